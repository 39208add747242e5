"""Build a Relay connection from a domain ``Page``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from vouch.api.pagination import Connection, Edge, PageInfo, encode_cursor
from vouch.attribution.paging import Page

NodeT = TypeVar("NodeT")


def to_connection(
    page: Page[Any], convert: Callable[[Any], NodeT], key: Callable[[Any], int]
) -> Connection[NodeT]:
    edges = [Edge(cursor=encode_cursor(key(item)), node=convert(item)) for item in page.items]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
        ),
        total_count=page.total,
    )
