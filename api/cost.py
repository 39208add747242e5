"""Query cost: how many objects an operation may return, computed before it runs.

Depth, alias and field limits (``api.limits``) bound the document, not the result: nested
connections multiply, so ``me { referrals(first: 100) { advocate { referrals(first: 100) { … }}}}``
is a short document that asks for a million objects. As GitHub's node limit does, every list
field is given a size — its ``first``/``limit`` argument (the argument's default when absent),
the documented cap of a list without one (``Advocate.asks``: 20), else ``UNBOUNDED_LIST_SIZE`` —
and the cost is the sum, over every list field, of the product of the sizes along its path:

    me { referrals(first: 100) { advocate { referrals(first: 100) { id } } } }
    = 100 (outer referrals) + 100 * 100 (inner referrals) = 10,100

The ``edges``/``nodes`` lists of a connection are the connection's own items (its ``first``
already counted them). Sizes are capped at the page-size cap (a larger ``first`` is refused by
the resolver with its own message). Fragments are measured once and scaled, so the walk is linear
in the document. The limit depends on the caller (``Context.max_cost``): widget tokens get a
lower one than API keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
)

from vouch.api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from vouch.core.batching import NESTED_LIST_MAX

SIZE_ARGUMENTS = ("first", "limit")
# Lists without a size argument, at their documented cap.
LIST_SIZES: dict[str, int] = {
    "Advocate.asks": 20,
    "Advocate.rewards": NESTED_LIST_MAX,
    "Referral.opportunities": NESTED_LIST_MAX,
    "Referral.revenue": NESTED_LIST_MAX,
    "Advocate.signals": 50,
    "Query.advocateChains": 200,
}
UNBOUNDED_LIST_SIZE = 10
CONNECTION_LISTS = ("edges", "nodes")
COST_CODE = "QUERY_TOO_COSTLY"

_Parent = GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType


class QueryTooCostly(GraphQLError):
    """The operation may return more objects than the caller's limit allows."""

    def __init__(self, cost: int, limit: int, who: str, node: OperationDefinitionNode) -> None:
        super().__init__(
            f"This query may return up to {cost:,} objects (cost {cost}); the limit for {who} is"
            f" {limit:,}. Ask for fewer items with `first`, nest fewer lists, or split the query.",
            node,
            extensions={"code": COST_CODE, "cost": cost, "limit": limit},
        )


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> tuple[OperationDefinitionNode, int] | None:
    """The operation to run and its cost; None when there is no such operation (graphql-core
    reports that itself)."""
    operation = _operation(document, operation_name)
    if operation is None:
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    variable_defaults = {
        v.variable.name.value: v.default_value for v in operation.variable_definitions or ()
    }
    values = variables or {}
    memo: dict[str, int] = {}
    visiting: set[str] = set()

    def size(field_node: FieldNode, parent: _Parent, field_name: str) -> int | None:
        """The size of a list-returning (or paged) field, None for a single object."""
        if isinstance(parent, GraphQLUnionType):
            return None
        definition = parent.fields.get(field_name)
        if definition is None:
            return None
        for arg_name in SIZE_ARGUMENTS:
            argument = definition.args.get(arg_name)
            if argument is None:
                continue
            value: Any = argument.default_value
            for node in field_node.arguments or ():
                if node.name.value != arg_name:
                    continue
                if isinstance(node.value, IntValueNode):
                    value = int(node.value.value)
                elif isinstance(node.value, VariableNode):
                    var = node.value.name.value
                    if var in values:
                        value = values[var]
                    else:
                        default = variable_defaults.get(var)
                        value = int(default.value) if isinstance(default, IntValueNode) else value
                else:
                    value = None
            if not isinstance(value, int) or isinstance(value, bool):
                value = DEFAULT_PAGE_SIZE
            return max(0, min(int(value), MAX_PAGE_SIZE))
        if not isinstance(get_nullable_type(definition.type), GraphQLList):
            return None
        if parent.name.endswith("Connection") and field_name in CONNECTION_LISTS:
            return None  # the connection's own items: its size already counted them
        return LIST_SIZES.get(f"{parent.name}.{field_name}", UNBOUNDED_LIST_SIZE)

    def selections(selection_set: SelectionSetNode, parent: _Parent) -> int:
        """Objects returned under one instance of ``parent``."""
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                name = node.name.value
                if name.startswith("__") or node.selection_set is None:
                    continue
                if isinstance(parent, GraphQLUnionType):
                    continue  # only __typename; members are selected in fragments
                definition = parent.fields.get(name)
                if definition is None:
                    continue  # reported by validation
                child = get_named_type(definition.type)
                if is_leaf_type(child) or not isinstance(
                    child, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType
                ):
                    continue
                inner = selections(node.selection_set, child)
                n = size(node, parent, name)
                total += inner if n is None else n + n * inner
            elif isinstance(node, InlineFragmentNode):
                target = parent
                if node.type_condition is not None:
                    named = schema.get_type(node.type_condition.name.value)
                    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                        target = named
                total += selections(node.selection_set, target)
            elif isinstance(node, FragmentSpreadNode):
                total += spread(node.name.value)
        return total

    def spread(name: str) -> int:
        if name in memo:
            return memo[name]
        fragment = fragments.get(name)
        if fragment is None or name in visiting:
            return 0
        named = schema.get_type(fragment.type_condition.name.value)
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            return 0
        visiting.add(name)
        memo[name] = result = selections(fragment.selection_set, named)
        visiting.discard(name)
        return result

    return operation, selections(operation.selection_set, root)


def check_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    limit: int | None,
    who: str,
) -> QueryTooCostly | None:
    """The refusal when the operation costs more than ``limit`` (None: no limit)."""
    if limit is None:
        return None
    measured = operation_cost(schema, document, operation_name, variables)
    if measured is None:
        return None
    operation, cost = measured
    return QueryTooCostly(cost, limit, who, operation) if cost > limit else None
