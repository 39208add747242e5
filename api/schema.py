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

from api.mutations.asks import AskMutations
from api.mutations.recompute_tiers import TierMutations
from api.mutations.record_action import ActionMutations
from api.mutations.record_signals import SignalMutations
from api.mutations.reservations import ReservationMutations
from api.queries.advocacy import AdvocacyQueries
from api.queries.advocates import AdvocateQueries
from api.queries.programs import ProgramQueries
from core.errors import DomainError

MAX_DEPTH = 10
MAX_ALIASES = 20
MAX_TOKENS = 2_000

QUERY_CLASSES: tuple[type, ...] = (ProgramQueries, AdvocateQueries, AdvocacyQueries)
MUTATION_CLASSES: tuple[type, ...] = (
    SignalMutations,
    TierMutations,
    AskMutations,
    ReservationMutations,
    ActionMutations,
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
