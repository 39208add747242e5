"""The schema: merged query and mutation roots, with the hardening extensions.

Add a noun by writing ``api/queries/<noun>.py`` (and ``api/mutations/<verb>_<noun>.py``) and
listing its class below.
"""

from __future__ import annotations

from collections.abc import Callable

from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import Schema
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.mutations.opportunities import OpportunityMutations
from api.mutations.referral_lifecycle import ReferralLifecycleMutations
from api.mutations.revenue import RevenueMutations
from api.mutations.rewards import RewardMutations
from api.mutations.webhooks import WebhookMutations
from api.queries.advocates import AdvocateQueries
from api.queries.chain import ChainQueries
from api.queries.moderation import ModerationQueries
from api.queries.programs import ProgramQueries
from api.queries.reports import ReportQueries
from api.queries.rewards import RewardQueries
from api.queries.webhooks import WebhookQueries
from core.errors import DomainError

MAX_DEPTH = 10
MAX_ALIASES = 20
MAX_TOKENS = 2_000

QUERY_CLASSES: tuple[type, ...] = (
    ProgramQueries,
    AdvocateQueries,
    RewardQueries,
    ReportQueries,
    ChainQueries,
    ModerationQueries,
    WebhookQueries,
)
MUTATION_CLASSES: tuple[type, ...] = (
    OpportunityMutations,
    RevenueMutations,
    ReferralLifecycleMutations,
    RewardMutations,
    WebhookMutations,
)

Query = merge_types("Query", QUERY_CLASSES)
Mutation = merge_types("Mutation", MUTATION_CLASSES) if MUTATION_CLASSES else None


def _should_mask(error: GraphQLError) -> bool:
    """Mask bugs, never expected errors: domain errors and GraphQL's own messages pass."""
    original = error.original_error
    return original is not None and not isinstance(original, (DomainError, GraphQLError))


def build_schema(*, production: bool) -> Schema:
    # Factories, not instances: strawberry builds fresh extensions per request. The parser and
    # validation caches are module-level inside strawberry, keyed by document, so they persist.
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=512),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: ValidationCache(maxsize=512),
    ]
    if production:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
        extensions.append(lambda: MaskErrors(should_mask_error=_should_mask))
    return Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(disable_field_suggestions=production),
    )


def export_sdl() -> str:
    """The SDL as committed in ``api/schema.graphql``."""
    return build_schema(production=False).as_str() + "\n"
