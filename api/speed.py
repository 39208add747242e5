"""The GraphQL speed machinery, all of it, in one place (issue 19): what Vouch changes in how
strawberry and graphql-core run a request, why, and the switch that turns it off.

``VOUCH_GRAPHQL_FAST_PATH`` (default on) decides whether ``api.schema.build_schema`` installs
the pieces below and whether ``api.view`` answers JSON POSTs itself. Off, a request runs through
strawberry's own resolver wrappers, graphql-core's own ``execute_field`` and strawberry's
generic view; ``tests/api/test_fast_path.py`` runs generated queries through both and compares
results and errors, and ``bench/graphql.py --pieces`` measures what each piece buys
(bench/RESULTS.md). Upgrading strawberry or graphql-core: follow ``api/UPGRADING.md``.

The pieces, and what each buys (CPU per request with all pieces against all but that one,
``bench/graphql.py --pieces``, 2026-12-05, bench/RESULTS.md): a page of 50 with nesting / a page
of 50 with advocate and rewards / the widget's query.

1. ``direct_attribute_fields`` (+42% / +42% / +3% without it): plain fields read their attribute
   in one call instead of strawberry's four (uses strawberry's private ``_get_basic_result``
   resolver name and its field definitions' ``default_resolver``/``is_basic_field``).
2. ``VouchExecutionContext.execute_field`` (+22% / +24% / +1%): a short path for leaf fields
   marked with a ``StaticInfo`` by piece 1 (a copy of graphql-core 3.3's ``execute_field`` for
   that case, hence graphql-core is pinned).
3. ``api.view.VouchGraphQL._answer_post`` (+9% / +10% / +9%): a JSON POST answered without
   strawberry's generic ``GraphQL.run`` (same answers, same errors).
4. ``VouchExecutionContext.collect_subfields`` (issue 16; widget -4%, widget.js's query -5% in
   an in-process A/B): graphql-core collects every object field's subfields anew on every
   request; for a document without directives they depend on the document alone, so they are
   kept with the cached document (``api.execution.Prepared.subfields``) and reused. Needs
   piece 2's execution context class.

5. ``api.inputs`` (issue 16): a field's arguments converted by a plan built the first time
   (strawberry works out every argument's and input field's type on every call: ~45 µs of a
   keyed conversion, ~6% of a deal push's worker CPU). Dispatches per schema, so a schema
   without the piece converts as strawberry does.

Dropped after measuring: calling argument-free resolvers directly (``wrapped_func``,
``Info(_raw_info=…)``, ``_get_field_exception_handlers``) bought +7% / -2% / +6% in one run and
+7% / +3% / -1% in another, within noise of nothing, for the most private internals of all.

What is *not* speed machinery and stays on both paths: ``api.execution``'s pipeline (the
document cache, operation limits, cost, read-only autocommit reads, error masking), which
replaces strawberry's extension runner because those concerns are fixed; ``VouchSchema``
refuses ``extensions=`` for that reason. Row-backed types (``api.types.rows``) are a type
design, not a shortcut: their descriptors serve both paths.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

from graphql import (
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLOutputType,
    get_nullable_type,
    is_leaf_type,
)
from graphql.execution.collect_fields import CollectedFields
from strawberry import Schema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

from vouch.api import inputs
from vouch.api.types.rows import RowBacked

STATIC_INFO = "vouch.static_info"


class StaticInfo(NamedTuple):
    """What graphql-core reads of a resolve info while completing a leaf value: the names its
    error messages give ("Cannot return null for non-nullable field Referral.status"); and the
    leaf type itself (``return_type`` without its non-null wrapper)."""

    field_name: str
    return_type: GraphQLOutputType
    parent_type: GraphQLObjectType
    leaf_type: GraphQLLeafType


class VouchExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with a short path for the fields that carry a
    ``StaticInfo`` (leaf fields read by attribute, which ``api.schema`` marks): they take no
    arguments and their resolver never reads its info, so graphql-core's per-field set-up (the
    list of field nodes, a new 15-field info, argument coercion) is skipped and the prebuilt
    info stands in where completion needs one. A page of 50 referrals with their rewards
    completes ~650 such fields. Everything else runs through graphql-core unchanged."""

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        field_def = parent_type.fields.get(field_details_list[0].node.name.value)
        static = None if field_def is None else field_def.extensions.get(STATIC_INFO)
        if field_def is None or static is None or self.middleware_manager is not None:
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        # graphql-core's execute_field, for a field without arguments or info
        return_type = field_def.type
        try:
            result = field_def.resolve(source, static)  # type: ignore[misc]
            if self.is_awaitable(result):
                return self.complete_awaitable_value(
                    return_type, field_details_list, static, path, result, position_context
                )
            if result is None or isinstance(result, Exception):  # null checks, returned errors
                return self.complete_value(
                    return_type, field_details_list, static, path, result, position_context
                )
            # a value of a leaf type: what complete_value comes to after its type dispatch
            return self.complete_leaf_value(static.leaf_type, result)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None

    def collect_subfields(
        self, return_type: GraphQLObjectType, field_details_list: Any
    ) -> CollectedFields:
        """graphql-core collects a field's subfields on every request (once per execution);
        for a document without directives that depends on nothing but the document, so piece
        4 keeps the result with the cached document (``api.execution.Prepared.subfields``)
        and later requests reuse it."""
        memo = SUBFIELDS_MEMO.get()
        if memo is None:
            return super().collect_subfields(return_type, field_details_list)
        # This execution's own memo first (the 50 objects of a page share one list), as
        # graphql-core's collect_subfields does, so a list's key is built once per request.
        execution = self._relevant_sub_fields
        cached = execution.get((return_type, id(field_details_list)))
        if cached is not None:
            return cached[1]
        # The nodes belong to the cached document, which holds the memo: their ids stay theirs.
        key = (return_type, *[id(details.node) for details in field_details_list])
        found = memo.get(key)
        if found is None:
            found = memo[key] = super().collect_subfields(return_type, field_details_list)
        else:  # kept, with its list, for the rest of this execution
            execution[(return_type, id(field_details_list))] = (field_details_list, found)
        return found


# The subfields memo of the document being executed (set by ``api.execution``), or None: a
# context variable, as graphql-core builds the execution context itself.
SUBFIELDS_MEMO: ContextVar[dict[Any, CollectedFields] | None] = ContextVar(
    "vouch_subfields_memo", default=None
)


_UNSET: Any = object()


def _attribute(name: str, compute: Callable[[Any], Any] | None = None) -> Callable[..., Any]:
    if compute is None:

        def resolve(source: Any, info: Any, **kwargs: Any) -> Any:
            return getattr(source, name)

    else:
        # A row-backed type's field (api.types.rows): the value the instance holds (built by
        # the constructor, or read before), else computed from its row without the descriptor.
        def resolve(source: Any, info: Any, **kwargs: Any) -> Any:
            value = source.__dict__.get(name, _UNSET)
            return compute(source) if value is _UNSET else value

    resolve._is_default = True  # type: ignore[attr-defined]  # as strawberry marks its own
    return resolve


def direct_attribute_fields(schema: Schema) -> int:
    """Plain fields (no resolver, no extension) read their attribute in one call.

    Strawberry resolves such a field through four Python calls (its wrapper, ``get_result``,
    two properties) before ``getattr``; a page of 50 referrals reads ~550 of them, so the
    detour cost more than the page's SQL. A row-backed type's field is computed from the row
    without going through its descriptor (nor cached on the instance: GraphQL reads it once).
    Leaf fields are also marked with a ``StaticInfo`` for ``VouchExecutionContext``'s short
    path. Returns how many fields were rewired."""
    rewired = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        origin = graphql_type.extensions[GraphQLCoreConverter.DEFINITION_BACKREF].origin
        computed = origin.FIELDS if issubclass(origin, RowBacked) else {}
        for name, field in graphql_type.fields.items():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if (
                getattr(field.resolve, "__name__", "") == "_get_basic_result"
                and definition is not None
                and definition.is_basic_field
                and definition.default_resolver is getattr
                and not definition.is_subscription
            ):
                python_name = definition.python_name
                field.resolve = _attribute(python_name, computed.get(python_name))
                leaf = get_nullable_type(field.type)
                if is_leaf_type(leaf):  # its info is never read
                    field.extensions[STATIC_INFO] = StaticInfo(name, field.type, graphql_type, leaf)
                rewired += 1
    return rewired


ATTRIBUTES, LEAF_PATH, POST_VIEW = "attributes", "leaf_path", "post_view"
SUBFIELDS, INPUTS = "subfields", "inputs"
ALL = frozenset({ATTRIBUTES, LEAF_PATH, POST_VIEW, SUBFIELDS, INPUTS})
NONE: frozenset[str] = frozenset()


def pieces(fast: bool) -> frozenset[str]:
    """The pieces ``VOUCH_GRAPHQL_FAST_PATH`` turns on: all of them, or none (the bench turns
    them on one by one to measure each)."""
    return ALL if fast else NONE


def install(schema: Schema, on: frozenset[str]) -> int:
    """Pieces 1, 4 and 5 on a built schema (piece 2 is its execution context class, set by
    ``build_schema``, which piece 4 needs too; piece 3 belongs to the view). Returns how many
    fields piece 1 rewired."""
    documents = getattr(schema, "documents", None)
    if documents is not None:
        documents.reuse_subfields = SUBFIELDS in on and LEAF_PATH in on
    if INPUTS in on:
        inputs.enable(schema.config)
    return direct_attribute_fields(schema) if ATTRIBUTES in on else 0
