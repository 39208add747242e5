"""Build a Relay connection from a domain ``Page``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from vouch.api.pagination import Connection, Edge, PageArgs, encode_cursor, page_info
from vouch.core.paging import Page

NodeT = TypeVar("NodeT")


def to_connection(
    page: Page[Any], convert: Callable[[Any], NodeT], key: Callable[[Any], int], args: PageArgs
) -> Connection[NodeT]:
    edges = [
        Edge(cursor=encode_cursor(args.connection, key(item)), node=convert(item))
        for item in page.items
    ]
    return Connection(
        edges=edges,
        page_info=page_info(args, edges, has_next=page.has_next, has_previous=page.has_previous),
        total_count=page.total,
    )
