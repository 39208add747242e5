"""The schema: merged query and mutation roots, executed through ``api.execution``.

Add a noun by writing ``api/queries/<noun>.py`` (and ``api/mutations/<verb>_<noun>.py``) and
listing its class below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from graphql import (
    ASTValidationRule,
    GraphQLError,
    GraphQLObjectType,
    get_nullable_type,
    is_leaf_type,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import Schema
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from vouch.api.execution import (
    STATIC_INFO,
    DocumentCache,
    StaticInfo,
    VouchExecutionContext,
    execute_operation,
    log_errors,
)
from vouch.api.limits import operation_limits_rule
from vouch.api.mutations.actions import ActionMutations
from vouch.api.mutations.advocacy import TierMutations
from vouch.api.mutations.advocates import AdvocateMutations
from vouch.api.mutations.asks import AskMutations
from vouch.api.mutations.conversions import RecordConversionMutation
from vouch.api.mutations.experiments import ExperimentMutations
from vouch.api.mutations.links import LinkMutations
from vouch.api.mutations.offers import RedeemOfferMutation
from vouch.api.mutations.opportunities import OpportunityMutations
from vouch.api.mutations.programs import ProgramMutations
from vouch.api.mutations.referral_lifecycle import ReferralLifecycleMutations
from vouch.api.mutations.referrals import ReferralMutations
from vouch.api.mutations.reservations import ReservationMutations
from vouch.api.mutations.revenue import RevenueMutations
from vouch.api.mutations.rewards import RewardMutations
from vouch.api.mutations.share_events import ShareEventMutations
from vouch.api.mutations.signals import SignalMutations
from vouch.api.mutations.webhooks import WebhookMutations
from vouch.api.queries.advocacy import AdvocacyQueries
from vouch.api.queries.advocates import AdvocateQueries
from vouch.api.queries.backtests import BacktestQueries
from vouch.api.queries.chain import ChainQueries
from vouch.api.queries.experiments import ExperimentQueries
from vouch.api.queries.integrations import IntegrationQueries
from vouch.api.queries.jobs import JobQueries
from vouch.api.queries.links import LinkQueries
from vouch.api.queries.moderation import ModerationQueries
from vouch.api.queries.node import NodeQueries
from vouch.api.queries.opportunities import OpportunityQueries
from vouch.api.queries.programs import ProgramQueries
from vouch.api.queries.referrals import ReferralQueries
from vouch.api.queries.reports import ReportQueries
from vouch.api.queries.rewards import RewardQueries
from vouch.api.queries.webhooks import WebhookQueries
from vouch.api.scalars import SCALAR_OVERRIDES
from vouch.api.types.rows import RowBacked

MAX_DEPTH = 10
MAX_ALIASES = 20
MAX_TOKENS = 2_000
MAX_FIELDS = 1_000  # fields selected once every fragment is expanded

# Linear in the document, unlike strawberry's limiters (see api/limits.py: fragment bombs).
LIMITS_RULE = operation_limits_rule(
    max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, max_fields=MAX_FIELDS
)

QUERY_CLASSES: tuple[type, ...] = (
    NodeQueries,
    ProgramQueries,
    AdvocateQueries,
    LinkQueries,
    ReferralQueries,
    RewardQueries,
    ReportQueries,
    ChainQueries,
    ModerationQueries,
    WebhookQueries,
    AdvocacyQueries,
    ExperimentQueries,
    BacktestQueries,
    JobQueries,
    OpportunityQueries,
    IntegrationQueries,
)
MUTATION_CLASSES: tuple[type, ...] = (
    ProgramMutations,
    AdvocateMutations,
    LinkMutations,
    ReferralMutations,
    RedeemOfferMutation,
    RecordConversionMutation,
    ShareEventMutations,
    OpportunityMutations,
    RevenueMutations,
    ReferralLifecycleMutations,
    RewardMutations,
    WebhookMutations,
    SignalMutations,
    TierMutations,
    AskMutations,
    ReservationMutations,
    ActionMutations,
    ExperimentMutations,
)

Query = merge_types("Query", QUERY_CLASSES)
Mutation = merge_types("Mutation", MUTATION_CLASSES) if MUTATION_CLASSES else None


class VouchSchema(Schema):
    """Strawberry's schema, executing through ``api.execution``'s fixed pipeline."""

    def __init__(self, *args: Any, production: bool, **kwargs: Any) -> None:
        if kwargs.get("extensions"):
            # execute() below replaces strawberry's pipeline, so its extensions would never run:
            # a MaskErrors() added as strawberry's docs say would silently do nothing.
            raise TypeError(
                "VouchSchema does not run strawberry schema extensions; put the behaviour in "
                "api.execution's pipeline (see its module docstring)"
            )
        kwargs.setdefault("execution_context_class", VouchExecutionContext)
        super().__init__(*args, **kwargs)
        self.production = production
        rules: list[type[ASTValidationRule]] = [LIMITS_RULE]
        if production:
            rules.append(NoSchemaIntrospectionCustomRule)
        self.documents = DocumentCache(
            self._schema, rules, max_tokens=MAX_TOKENS, hide_suggestions=production
        )

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        return await execute_operation(
            self,
            self.documents,
            query=query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=(
                DEFAULT_ALLOWED_OPERATION_TYPES
                if allowed_operation_types is None
                else allowed_operation_types
            ),
            operation_extensions=operation_extensions,
            production=self.production,
        )

    def execute_sync(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Refused: Vouch's resolvers are asynchronous and its limits live in ``execute``."""
        raise NotImplementedError("Vouch executes GraphQL asynchronously: use execute()")

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors, getattr(execution_context, "context", None))


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


def _direct(resolver: Any, definition: Any, info_class: type, info_name: str | None) -> Any:
    function = resolver.wrapped_func

    if info_name is None:

        def call_directly(source: Any, info: Any, **kwargs: Any) -> Any:
            return function(source)

    else:

        def call_directly(source: Any, info: Any, **kwargs: Any) -> Any:
            return function(source, **{info_name: info_class(_raw_info=info, _field=definition)})

    return call_directly


def direct_resolvers(schema: Schema) -> int:
    """Resolvers that take only ``self`` and ``info`` are called directly.

    Strawberry calls every resolver through six Python frames (its wrapper, the field extension
    chain, argument conversion, ``get_result``) and an async one through an extra coroutine; for
    a method without arguments, extensions or permission classes that reduces to
    ``method(source, info=Info(...))``, which is what this calls (graphql-core awaits the
    coroutine of an ``async`` one). Returns how many fields were rewired."""
    rewired = 0
    info_class = schema.config.info_class
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for field in graphql_type.fields.values():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            resolver = getattr(definition, "base_resolver", None)
            if (
                resolver is None
                or field.args
                or definition.extensions
                or definition.permission_classes
                or definition.is_subscription
                or schema.schema_converter._get_field_exception_handlers(definition)
                or resolver.self_parameter is None
                or resolver.root_parameter is not None
                or resolver.parent_parameter is not None
                or resolver.arguments
                or len(resolver.signature.parameters) != 1 + (resolver.info_parameter is not None)
            ):
                continue
            info = resolver.info_parameter
            field.resolve = _direct(resolver, definition, info_class, info and info.name)
            rewired += 1
    return rewired


def build_schema(*, production: bool) -> Schema:
    schema = VouchSchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(disable_field_suggestions=production),
        production=production,
        scalar_overrides=SCALAR_OVERRIDES,  # type: ignore[arg-type]
    )
    direct_attribute_fields(schema)
    direct_resolvers(schema)
    return schema


def export_sdl() -> str:
    """The SDL as committed in ``api/schema.graphql``."""
    return build_schema(production=False).as_str() + "\n"
