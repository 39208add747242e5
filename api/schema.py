"""The schema: merged query and mutation roots, with the hardening extensions.

Add a noun by writing ``api/queries/<noun>.py`` (and ``api/mutations/<verb>_<noun>.py``) and
listing its class below.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from graphql import GraphQLError, GraphQLObjectType
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import Schema
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from api.limits import HideSuggestions, operation_limits_rule
from api.mutations.advocates import AdvocateMutations
from api.mutations.asks import AskMutations
from api.mutations.links import LinkMutations
from api.mutations.opportunities import OpportunityMutations
from api.mutations.programs import ProgramMutations
from api.mutations.recompute_tiers import TierMutations
from api.mutations.record_action import ActionMutations
from api.mutations.record_conversion import RecordConversionMutation
from api.mutations.record_share_event import ShareEventMutations
from api.mutations.record_signals import SignalMutations
from api.mutations.redeem_offer import RedeemOfferMutation
from api.mutations.referral_lifecycle import ReferralLifecycleMutations
from api.mutations.referrals import ReferralMutations
from api.mutations.reservations import ReservationMutations
from api.mutations.revenue import RevenueMutations
from api.mutations.rewards import RewardMutations
from api.mutations.webhooks import WebhookMutations
from api.queries.advocacy import AdvocacyQueries
from api.queries.advocates import AdvocateQueries
from api.queries.chain import ChainQueries
from api.queries.links import LinkQueries
from api.queries.moderation import ModerationQueries
from api.queries.programs import ProgramQueries
from api.queries.referrals import ReferralQueries
from api.queries.reports import ReportQueries
from api.queries.rewards import RewardQueries
from api.queries.webhooks import WebhookQueries
from core.db import autocommit_reads
from core.errors import DomainError

MAX_DEPTH = 10
MAX_ALIASES = 20
MAX_TOKENS = 2_000
MAX_FIELDS = 1_000  # fields selected once every fragment is expanded

# The limit rules are built once: the validation cache is keyed by (schema, document, rules),
# and QueryDepthLimiter/MaxAliasesLimiter would make new rule classes on every request, so
# no document would ever be served from the cache.
# Linear in the document, unlike strawberry's limiters (see api/limits.py: fragment bombs).
LIMITS_RULE = operation_limits_rule(
    max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, max_fields=MAX_FIELDS
)

QUERY_CLASSES: tuple[type, ...] = (
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
)

Query = merge_types("Query", QUERY_CLASSES)
Mutation = merge_types("Mutation", MUTATION_CLASSES) if MUTATION_CLASSES else None

logger = logging.getLogger("vouch.graphql")


def is_expected(error: GraphQLError) -> bool:
    """Expected: the caller's mistake (syntax, validation, authorisation, a domain rule)."""
    original = error.original_error
    return original is None or isinstance(original, (DomainError, GraphQLError))


def _should_mask(error: GraphQLError) -> bool:
    """Mask bugs, never expected errors: domain errors and GraphQL's own messages pass."""
    return not is_expected(error)


def _request_id(execution_context: ExecutionContext | None) -> str:
    context = getattr(execution_context, "context", None)
    request = getattr(context, "request", None)
    state = getattr(request, "scope", {}).get("state", {}) if request is not None else {}
    return str(state.get("request_id", "-"))


class VouchSchema(Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log bugs with their traceback and the request id; expected errors without either
        (their messages may quote user input, so they stay at debug level)."""
        request_id = _request_id(execution_context)
        for error in errors:
            if is_expected(error):
                logger.debug("request %s: %s", request_id, error.message)
                continue
            original = error.original_error
            logger.error(
                "request %s: unexpected %s at %s",
                request_id,
                type(original).__name__,
                ".".join(str(p) for p in error.path or ()) or "-",
                exc_info=(type(original), original, original.__traceback__)
                if original is not None
                else None,
            )


class AutocommitQueries(SchemaExtension):
    """Queries read without BEGIN/ROLLBACK: two round trips fewer per request.

    Query resolvers never write (mutations do, in one transaction each), and under READ
    COMMITTED a statement sees the same data inside or outside a transaction."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        session = getattr(context, "session", None)
        if session is not None and self.execution_context.operation_type is OperationType.QUERY:
            autocommit_reads(session)
        yield


def _attribute(name: str) -> Callable[..., Any]:
    def resolve(source: Any, info: Any, **kwargs: Any) -> Any:
        return getattr(source, name)

    resolve._is_default = True  # type: ignore[attr-defined]  # as strawberry marks its own
    return resolve


def direct_attribute_fields(schema: Schema) -> int:
    """Plain fields (no resolver, no extension) read their attribute in one call.

    Strawberry resolves such a field through four Python calls (its wrapper, ``get_result``,
    two properties) before ``getattr``; a page of 50 referrals reads ~550 of them, so the
    detour cost more than the page's SQL. Returns how many fields were rewired."""
    rewired = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for field in graphql_type.fields.values():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if (
                getattr(field.resolve, "__name__", "") == "_get_basic_result"
                and definition is not None
                and definition.is_basic_field
                and definition.default_resolver is getattr
                and not definition.is_subscription
            ):
                field.resolve = _attribute(definition.python_name)
                rewired += 1
    return rewired


def build_schema(*, production: bool) -> Schema:
    # Factories, not instances: strawberry builds fresh extensions per request. The parser and
    # validation caches are module-level inside strawberry, keyed by document, so they persist.
    rules: list[Any] = [LIMITS_RULE]
    if production:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=512),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=512),
        AutocommitQueries,
    ]
    if production:
        extensions.insert(0, HideSuggestions)  # outermost: sees the cached validation's errors
        extensions.append(lambda: MaskErrors(should_mask_error=_should_mask))
    schema = VouchSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(disable_field_suggestions=production),
    )
    direct_attribute_fields(schema)
    return schema


def export_sdl() -> str:
    """The SDL as committed in ``api/schema.graphql``."""
    return build_schema(production=False).as_str() + "\n"
