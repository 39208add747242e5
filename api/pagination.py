"""Relay-style connections with a page-size cap. Cursors are opaque keyset positions, each bound
to the connection that issued it: a ``referrals`` cursor given to ``advocates`` is an error."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import strawberry

from vouch.core.errors import ValidationFailed

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_CURSOR_LENGTH = 200

NodeT = TypeVar("NodeT")


@strawberry.type(description="Where a page sits in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="More items follow this page (with `last`: true when `before` was given)."
    )
    has_previous_page: bool = strawberry.field(
        description="Items come before this page (with `first`: true when `after` was given)."
    )
    start_cursor: str | None = strawberry.field(
        description="Pass as `before` for the previous page."
    )
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page.")


@strawberry.type(description="One item of a page with its cursor.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(description="Opaque position of this item.")
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(description="A page of items.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(description="The items of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    total_count: int = strawberry.field(description="How many items match, over all pages.")

    @strawberry.field(description="The items of this page without cursors.")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


def page_size(first: int | None, *, field: str = "first") -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0 or first > MAX_PAGE_SIZE:
        raise ValidationFailed(f"{field} must be between 0 and {MAX_PAGE_SIZE}", field=field)
    return first


def encode_cursor(connection: str, position: int | None) -> str:
    """The cursor of ``position`` in ``connection``; ``None``: the edge of the list (what
    ``first: 0`` / ``last: 0`` answer when no cursor was given)."""
    text = f"{connection}:{'' if position is None else position}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, connection: str, *, field: str = "after") -> int | None:
    """The position of a cursor issued by ``connection``, or ``ValidationFailed``."""
    if cursor is None:
        return None
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError(cursor)
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed("not a valid cursor", field=field) from exc
    owner, colon, number = raw.rpartition(":")
    if not colon or not (number == "" or (number.isdigit() and len(number) <= 18)):
        raise ValidationFailed("not a valid cursor", field=field)
    if owner != connection:
        raise ValidationFailed(
            f"this cursor belongs to another list; use a cursor from {connection}", field=field
        )
    return int(number) if number else None


@dataclass(frozen=True, slots=True)
class PageArgs:
    """Relay's ``first``/``after``/``last``/``before`` of one connection, checked and decoded."""

    connection: str
    size: int
    after: int | None
    before: int | None
    from_end: bool
    after_cursor: str | None
    before_cursor: str | None

    def window(self) -> dict[str, Any]:
        """The keyword arguments of the domain's list functions."""
        return {
            "first": self.size,
            "after": self.after,
            "before": self.before,
            "from_end": self.from_end,
        }


def page_args(
    connection: str,
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
) -> PageArgs:
    if first is not None and last is not None:
        raise ValidationFailed("give first or last, not both", field="last")
    from_end = last is not None
    return PageArgs(
        connection=connection,
        size=page_size(last, field="last") if from_end else page_size(first),
        after=decode_cursor(after, connection, field="after"),
        before=decode_cursor(before, connection, field="before"),
        from_end=from_end,
        after_cursor=after,
        before_cursor=before,
    )


def page_info(args: PageArgs, edges: list[Any], *, has_next: bool, has_previous: bool) -> PageInfo:
    """Cursors of the first and last edge. An empty page asked with size 0 points where it was
    asked from, so ``hasNextPage: true`` always comes with a cursor to continue from."""
    if edges:
        start, end = edges[0].cursor, edges[-1].cursor
    elif args.size == 0:
        start = args.before_cursor or encode_cursor(args.connection, args.before)
        end = args.after_cursor or encode_cursor(args.connection, args.after)
    else:
        start = end = None
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=start,
        end_cursor=end,
    )
