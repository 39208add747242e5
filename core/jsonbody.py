"""Parsing JSON that came from outside: one strict reader for every JSON endpoint."""

from __future__ import annotations

from typing import Any

import orjson


class InvalidJson(ValueError):
    """The body is not JSON Vouch can store; the caller answers 400."""


def loads_untrusted(body: bytes) -> Any:
    """Parse ``body`` or raise ``InvalidJson``.

    orjson refuses what would otherwise fail later as a 500: invalid UTF-8, lone surrogates
    (``"\\ud800"``, which no database text column can hold) and nesting deeper than 1,024
    levels (``json.loads`` recurses and can raise ``RecursionError``). NUL characters, which
    PostgreSQL text cannot store, are refused too."""
    if b"\\u0000" in body:
        raise InvalidJson("NUL characters are not allowed")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(str(exc)) from None
