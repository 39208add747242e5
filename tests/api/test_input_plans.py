"""Piece 5 of ``api.speed`` (``api.inputs``): every argument of the schema converts to what
strawberry's own ``convert_arguments`` gives, with every input field given and with only the
required ones, and the hot writes' inputs take the plan."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    Undefined,
    coerce_input_value,
)
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments

from vouch.api import inputs
from vouch.api.schema import build_schema

SAMPLES: dict[str, Any] = {
    "String": "text",
    "Int": 7,
    "Float": 1.5,
    "Boolean": True,
    "ID": "UmVmZXJyYWw6MQ==",
    "DateTime": "2026-01-05T10:00:00+00:00",
    "Date": "2026-01-05",
    "JSON": {"a": [1, 2]},
}


def _sample(graphql_type: Any, full: bool, depth: int = 0) -> Any:
    inner = graphql_type.of_type if isinstance(graphql_type, GraphQLNonNull) else graphql_type
    if isinstance(inner, GraphQLList):
        return [_sample(inner.of_type, full, depth), _sample(inner.of_type, full, depth)]
    if isinstance(inner, GraphQLEnumType):
        return next(iter(inner.values))
    if isinstance(inner, GraphQLScalarType):
        return SAMPLES[inner.name]
    assert isinstance(inner, GraphQLInputObjectType), inner
    return {
        name: _sample(field.type, full, depth + 1)
        for name, field in inner.fields.items()
        if full or (isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined)
    }


def _fields_with_arguments(schema: Any) -> list[tuple[str, Any]]:
    found = []
    for root in (schema._schema.query_type, schema._schema.mutation_type):
        for name, field in root.fields.items():
            if field.args:
                found.append((f"{root.name}.{name}", field))
    return found


SCHEMA = build_schema(production=False)


@pytest.mark.parametrize("full", [True, False], ids=["every field", "required only"])
def test_every_argument_converts_as_strawberry_converts_it(full: bool) -> None:
    registry = SCHEMA.schema_converter.scalar_registry
    compared = 0
    for name, field in _fields_with_arguments(SCHEMA):
        definition = field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
        coerced = {
            arg_name: coerce_input_value(_sample(arg.type, full), arg.type)
            for arg_name, arg in field.args.items()
            if full or (isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined)
        }
        theirs = convert_arguments(coerced, definition.arguments, registry, SCHEMA.config)
        ours = inputs.planned_convert_arguments(
            coerced, definition.arguments, registry, SCHEMA.config
        )
        assert ours == theirs, name
        compared += 1
    assert compared > 50


def test_the_hot_writes_inputs_take_the_plan() -> None:
    registry = SCHEMA.schema_converter.scalar_registry
    fields = dict(_fields_with_arguments(SCHEMA))
    for name in (
        "Mutation.recordConversion",
        "Mutation.recordRevenue",
        "Mutation.upsertOpportunity",
        "Mutation.redeemOffer",
        "Mutation.recordSignal",
    ):
        definition = fields[name].extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
        assert inputs.plan_for(definition.arguments, registry, SCHEMA.config) is not None, name


def test_lists_are_copied_so_a_shared_default_never_leaks() -> None:
    """graphql-core hands every request that omits a list the same default object."""
    registry = SCHEMA.schema_converter.scalar_registry
    field = dict(_fields_with_arguments(SCHEMA))["Mutation.upsertOpportunity"]
    definition = field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
    arg = field.args["input"]
    shared = coerce_input_value(_sample(arg.type, False), arg.type)
    first = inputs.planned_convert_arguments(
        {"input": shared}, definition.arguments, registry, SCHEMA.config
    )
    second = inputs.planned_convert_arguments(
        {"input": shared}, definition.arguments, registry, SCHEMA.config
    )
    assert first["input"] == second["input"]
    assert first["input"] is not second["input"]


def test_a_schema_without_the_piece_converts_as_strawberry_does() -> None:
    slow = build_schema(production=False, fast=False)
    assert not getattr(slow.config, inputs.ENABLED, False)
    assert getattr(SCHEMA.config, inputs.ENABLED, False)
