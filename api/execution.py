"""How Vouch runs one GraphQL operation: a fixed pipeline, not strawberry's extension runner.

Strawberry runs every request through its extension hooks: each extension is built anew per
request and each of the four phases (operation, parse, validate, execute) enters a context
manager per extension. With the seven extensions Vouch needed (token limit, parser cache,
validation rules, validation cache, autocommit reads, hidden suggestions, error masking) that
machinery cost more CPU than a widget query's own resolvers (measured again on 2026-12-05 against
strawberry's ``execute`` with one empty combined extension and its parser and validation caches:
+16% to +27% CPU per request, bench/RESULTS.md). Vouch's concerns are fixed, so they run here as
plain steps, once per request:

1. the document, parsed with a token limit and validated with Vouch's rules, is looked up in one
   LRU cache keyed by the query text (strawberry's two caches hash the parsed document again on
   every request); syntax and validation errors are cached with it;
2. the operation type is checked against what the transport allows (a mutation over GET is
   refused before validation errors are reported, as strawberry does), then its cost (the
   objects it may return, ``api.cost``) against the caller's limit, before any SQL;
3. queries read on autocommit connections, read-only (``core.read_only.autocommit_reads``);
4. graphql-core executes with strawberry's executor class, so resolvers see what they always saw
   (``VouchExecutionContext`` only shortens the path of leaf fields read by attribute);
5. errors are logged (bugs with traceback and request id), a database outage is re-raised for
   the app to answer 503, and in production unexpected errors are masked and no message suggests
   names ("Did you mean …?") from the hidden schema.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from inspect import isawaitable
from typing import Any, TypeGuard, cast

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    parse,
    validate,
)
from graphql import execute as graphql_execute
from graphql.validation import specified_rules
from strawberry.exceptions import MissingQueryError
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_operation_type

from vouch.api.cost import check_cost
from vouch.api.speed import SUBFIELDS_MEMO
from vouch.core.engine import is_database_unavailable
from vouch.core.errors import DomainError
from vouch.core.read_only import autocommit_reads

logger = logging.getLogger("vouch.graphql")
UNEXPECTED = "Unexpected error."
# Strawberry's check, cheaper than graphql-core's for the plain values most fields return.
_is_awaitable = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def is_expected(error: GraphQLError) -> bool:
    """Expected: the caller's mistake (syntax, validation, authorisation, a domain rule)."""
    original = error.original_error
    return original is None or isinstance(original, (DomainError, GraphQLError))


def without_suggestion(error: GraphQLError) -> GraphQLError:
    """The error without any "Did you mean …?" (which would spell out hidden names)."""
    message = _SUGGESTION.sub("", error.message).strip()
    if message == error.message:
        return error
    return GraphQLError(
        message, error.nodes, error.source, error.positions, error.path, error.original_error
    )


def masked(error: GraphQLError) -> GraphQLError:
    """An unexpected error as a client may see it: where, not what."""
    return GraphQLError(UNEXPECTED, error.nodes, error.source, error.positions, error.path)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A query text parsed and validated: ``document`` is None when it did not parse.
    ``subfields``: the subfields collected so far, for ``api.speed``'s piece 4, when the
    document has no directive (then they depend on the document alone), else None."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]
    subfields: dict[Any, Any] | None = None


class DocumentCache:
    """Parsed and validated documents by query text (bounded LRU: query texts come from
    clients, so an unbounded cache would be a memory leak anyone could drive)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        rules: Sequence[type[ASTValidationRule]],
        *,
        max_tokens: int,
        hide_suggestions: bool,
        maxsize: int = 512,
    ) -> None:
        self.schema = schema
        # strawberry's validate_document adds its two rules to whatever it is given
        self.rules = (*specified_rules, *rules, MaybeNullValidationRule, OneOfInputValidationRule)
        self.max_tokens = max_tokens
        self.hide_suggestions = hide_suggestions
        self.reuse_subfields = False  # api.speed's piece 4 turns it on
        self.get: Callable[[str], Prepared] = lru_cache(maxsize=maxsize)(self._prepare)
        self._cost: Callable[..., GraphQLError | None] = lru_cache(maxsize=maxsize)(self._measure)

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError as error:
            return Prepared(None, (error,))
        # graphql-core's own switch, so that no rule spells out a hidden name (input fields and
        # arguments included: their "Did you mean" sits mid-message); the strip below is kept
        # for any message a future rule builds without honouring it.
        errors = validate(self.schema, document, self.rules, hide_suggestions=self.hide_suggestions)
        if self.hide_suggestions:
            errors = [without_suggestion(e) for e in errors]
        # No "@" in the text, no directive: no @skip, @include or @defer whose variables
        # could change which fields are collected (a "@" inside a string only costs the reuse).
        reuse = self.reuse_subfields and not errors and "@" not in query
        return Prepared(document, tuple(errors), {} if reuse else None)

    def cost_refusal(
        self,
        query: str,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        limit: int,
        who: str,
    ) -> GraphQLError | None:
        """The cost refusal of one operation (``api.cost``), measured once per query text,
        operation, limit and the integer (or null) variables — the only ones a size argument
        can take — and kept in a bounded cache: a widget sends the same few queries."""
        sizes = tuple(
            sorted(
                (name, value)
                for name, value in (variables or {}).items()
                if value is None or isinstance(value, int)
            )
        )
        return self._cost(query, operation_name, sizes, limit, who)

    def _measure(
        self,
        query: str,
        operation_name: str | None,
        sizes: tuple[tuple[str, int | None], ...],
        limit: int,
        who: str,
    ) -> GraphQLError | None:
        document = self.get(query).document
        assert document is not None  # only documents that parsed get here
        return check_cost(self.schema, document, operation_name, dict(sizes), limit, who)


async def execute_operation(
    schema: Any,
    documents: DocumentCache,
    *,
    query: str | None,
    variable_values: dict[str, Any] | None,
    context_value: Any,
    root_value: Any,
    operation_name: str | None,
    allowed_operation_types: Iterable[OperationType],
    operation_extensions: dict[str, Any] | None,
    production: bool,
) -> ExecutionResult:
    """One operation through the pipeline above; ``schema`` is the strawberry schema."""
    if not query:
        raise MissingQueryError
    prepared = documents.get(query)
    document = prepared.document
    if document is None:
        return _failed(list(prepared.errors), context_value, production=production)
    try:
        operation_type = get_operation_type(document, operation_name)
    except RuntimeError as error:
        raise CannotGetOperationTypeError(operation_name) from error
    if operation_type not in allowed_operation_types:
        raise InvalidOperationTypeError(operation_type)
    if prepared.errors:
        return _failed(list(prepared.errors), context_value, production=production)
    limit = getattr(context_value, "max_cost", None)
    if limit is not None:
        refusal = documents.cost_refusal(
            query, document, operation_name, variable_values, limit, context_value.cost_payer
        )
        if refusal is not None:
            return _failed([refusal], context_value, production=production)

    session = getattr(context_value, "session", None)
    if session is not None and operation_type is OperationType.QUERY:
        autocommit_reads(session)
    memo = SUBFIELDS_MEMO.set(prepared.subfields)
    try:
        result: Any = graphql_execute(
            schema._schema,
            document,
            root_value=root_value,
            context_value=context_value,
            variable_values=variable_values,
            operation_name=operation_name,
            executor_class=schema.execution_context_class,
            is_awaitable=_is_awaitable,
            hide_suggestions=production,
            operation_extensions=operation_extensions,
        )
        if isawaitable(result):
            result = await result
    except Exception as exc:  # reported as strawberry reports it
        failure = exc if isinstance(exc, GraphQLError) else _wrapped(exc)
        return _failed([failure], context_value, production=production)
    finally:
        SUBFIELDS_MEMO.reset(memo)
    errors: list[GraphQLError] | None = result.errors
    if errors:
        errors = _finish_errors(errors, context_value, production=production)
    return ExecutionResult(data=result.data, errors=errors)


def _wrapped(exc: Exception) -> GraphQLError:
    return GraphQLError(str(exc), original_error=exc)


def _failed(errors: list[GraphQLError], context_value: Any, *, production: bool) -> ExecutionResult:
    return ExecutionResult(
        data=None, errors=_finish_errors(errors, context_value, production=production)
    )


def _finish_errors(
    errors: list[GraphQLError], context_value: Any, *, production: bool
) -> list[GraphQLError]:
    for error in errors:
        # A database outage is not a GraphQL error: the app answers 503 with Retry-After.
        if error.original_error is not None and is_database_unavailable(error.original_error):
            raise error.original_error
    log_errors(errors, context_value)
    if not production:
        return errors
    return [e if is_expected(e) else masked(e) for e in errors]


def _request_id(context: Any) -> str:
    request = getattr(context, "request", None)
    state = getattr(request, "scope", {}).get("state", {}) if request is not None else {}
    return str(state.get("request_id", "-"))


def log_errors(errors: list[GraphQLError], context: Any) -> None:
    """Log bugs with their traceback and the request id; expected errors without either
    (their messages may quote user input, so they stay at debug level)."""
    request_id = _request_id(context)
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
