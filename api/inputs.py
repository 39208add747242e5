"""Piece 5 of ``api.speed`` (issue 16): arguments converted by a plan built once per field.

Strawberry turns a field's coerced arguments into its Python values (input classes, lists)
with ``convert_arguments``, which works out every argument's and input field's type on every
call: name conversion, type resolution, generic and container checks. For a keyed conversion's
``RecordConversionInput`` that was ~45 µs of a ~2 ms request, and ~6% of a deal push's worker
CPU (``UpsertOpportunityInput``, with its contacts). Here each field's arguments get a plan the
first time: the GraphQL and Python name of every argument and input field, with a converter
that does exactly what ``convert_argument`` does for that type (leaves and enums as given,
lists copied or converted item by item, input classes built with ``None`` for fields without
a default). A type this does not model (``Maybe``, ``GlobalID``, an input with its own
``from_input``, a recursive input) leaves the whole field on strawberry's own conversion.

``tests/api/test_input_plans.py`` compares the two on every argument of the schema, with all
fields given and with only the required ones; pinned with strawberry's version (api/UPGRADING.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

from strawberry.relay.types import GlobalID
from strawberry.schema import schema_converter
from strawberry.types.arguments import _is_leaf_type, _is_optional_leaf_type, convert_arguments
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

Converter = Callable[[Any], Any]
Plan = tuple[tuple[str, str, Converter], ...]
ENABLED = "_vouch_input_plans"  # set on a schema's StrawberryConfig by ``api.speed.install``

# (id of a field's argument list, id of the config) -> (the list, the config, its plan or None
# for strawberry's own conversion). The list and config are kept so their ids are never reused.
_PLANS: dict[tuple[int, int], tuple[Any, Any, Plan | None]] = {}
_original = convert_arguments


def _as_given(value: Any) -> Any:
    return value


def _copied(value: Any) -> Any:
    # graphql-core gives every request that omits a list the same default object
    return None if value is None else UNSET if value is UNSET else list(value)


def _converter(
    type_: Any, registry: Mapping[object, Any], config: Any, seen: frozenset[Any]
) -> Converter | None:
    """What ``convert_argument`` does for ``type_``, or None where this does not model it."""
    if isinstance(type_, StrawberryMaybe):
        return None
    if isinstance(type_, StrawberryOptional):
        return _converter(type_.of_type, registry, config, seen)
    if isinstance(type_, StrawberryList):
        of = type_.of_type
        if _is_leaf_type(of, registry, skip_classes=(GlobalID,)) or _is_optional_leaf_type(
            of, registry, skip_classes=(GlobalID,)
        ):
            return _copied
        item = _converter(of, registry, config, seen)
        if item is None:
            return None
        return lambda value: (
            None if value is None else UNSET if value is UNSET else [item(x) for x in value]
        )
    if _is_leaf_type(type_, registry):
        return None if type_ is GlobalID else _as_given
    if isinstance(type_, LazyType):
        return _converter(type_.resolve_type(), registry, config, seen)
    if has_enum_definition(type_):
        return _as_given
    if not has_object_definition(type_) or type_ in seen:
        return None
    definition = type_.__strawberry_definition__
    if definition.from_input is not None:
        return None
    defaults = (
        {
            f.python_name: None
            for f in definition.fields
            if f.default_value is MISSING and f.default_factory is MISSING
        }
        if definition.is_input
        else {}
    )
    fields = []
    for f in definition.fields:
        field_type = f.resolve_type(type_definition=definition)
        convert = _converter(field_type, registry, config, seen | {type_})
        if convert is None:
            return None
        fields.append((config.name_converter.from_field(f), f.python_name, convert))
    build = type_

    def instance(value: Any) -> Any:
        if value is None:
            return None
        if value is UNSET:
            return UNSET
        kwargs = dict(defaults)
        for graphql_name, python_name, convert in fields:
            if graphql_name in value:
                kwargs[python_name] = convert(value[graphql_name])
        return build(**kwargs)

    return instance


def plan_for(arguments: list[Any], registry: Mapping[object, Any], config: Any) -> Plan | None:
    key = (id(arguments), id(config))
    kept = _PLANS.get(key)
    if kept is not None:
        return kept[2]
    plan: list[tuple[str, str, Converter]] = []
    for argument in arguments:
        convert = _converter(argument.type, registry, config, frozenset())
        if convert is None:
            _PLANS[key] = (arguments, config, None)
            return None
        plan.append((config.name_converter.from_argument(argument), argument.python_name, convert))
    _PLANS[key] = (arguments, config, tuple(plan))
    return tuple(plan)


def planned_convert_arguments(
    value: dict[str, Any],
    arguments: list[Any],
    scalar_registry: Mapping[object, Any],
    config: Any,
    info: Any = None,
) -> dict[str, Any]:
    """``convert_arguments`` through the field's plan, where its schema has this piece on."""
    if not arguments:
        return {}
    if not getattr(config, ENABLED, False):
        return _original(value, arguments, scalar_registry, config, info)
    plan = plan_for(arguments, scalar_registry, config)
    if plan is None:
        return _original(value, arguments, scalar_registry, config, info)
    kwargs = {}
    for name, python_name, convert in plan:
        if name in value:
            kwargs[python_name] = convert(value[name])
    return kwargs


def enable(config: Any) -> None:
    """Turn the piece on for the schema with this config (strawberry's ``get_arguments`` calls
    ``convert_arguments`` through its module: it is replaced once, and dispatches per
    schema, so a schema with the piece off converts as strawberry does)."""
    schema_converter.convert_arguments = planned_convert_arguments  # type: ignore[attr-defined]
    setattr(config, ENABLED, True)
