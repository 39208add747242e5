"""The one hashid codec for referral link codes.

A code encodes the link id *and* a random per-link nonce, so enumerating codes finds nothing:
a well-formed code for a real id still needs the right 31-bit nonce. A code is accepted only if
it re-encodes to itself (hashids decodes some non-canonical strings too).
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass

import hashids
from hashids import Hashids

ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/l/I
MAX_CODE_LENGTH = 32
NONCE_BITS = 31


# hashids reshuffles its alphabet in pure Python for every number it encodes or decodes
# (``_reorder``, a loop over the alphabet): a third of a cold landing's CPU outside the
# database went there. The shuffle is a pure function of two strings, and for one salt and
# alphabet every shuffle a code of two numbers needs is decided by the code's first character
# (hashids' "lottery"): a few hundred distinct calls in all. So it is memoised, in a bounded
# cache, for the whole process (hashids' functions look ``_reorder`` up in their module).
# ``tests/core/test_codes.py`` checks codes are the same with and without it.
REORDER_MEMO_SIZE = 4096
if not hasattr(hashids._reorder, "cache_info"):
    hashids._reorder = functools.lru_cache(maxsize=REORDER_MEMO_SIZE)(hashids._reorder)


@dataclass(frozen=True, slots=True)
class DecodedCode:
    link_id: int
    nonce: int


class LinkCodec:
    def __init__(self, salt: str, min_length: int = 10) -> None:
        self._hashids = Hashids(salt=salt, min_length=min_length, alphabet=ALPHABET)
        self._alphabet = frozenset(ALPHABET)
        # The shape every (id, nonce) code has, checked before the costly hashids decode:
        # strip the guards as hashids does, then exactly one separator must remain.
        self._guards = str.maketrans(dict.fromkeys(self._hashids._guards, " "))
        self._separators = frozenset(self._hashids._separators)

    @staticmethod
    def new_nonce() -> int:
        return secrets.randbits(NONCE_BITS)

    def encode(self, link_id: int, nonce: int) -> str:
        return str(self._hashids.encode(link_id, nonce))

    def decode(self, code: str) -> DecodedCode | None:
        """Return the id and nonce, or ``None`` for anything malformed or non-canonical."""
        if not code or len(code) > MAX_CODE_LENGTH or not set(code) <= self._alphabet:
            return None
        parts = code.translate(self._guards).split(" ")
        body = parts[1] if 2 <= len(parts) <= 3 else parts[0]
        if len(body) < 2 or sum(ch in self._separators for ch in body[1:]) != 1:
            return None  # not two numbers: most random strings end here, cheaply
        values = self._hashids.decode(code)
        if len(values) != 2:
            return None
        link_id, nonce = values
        if self._hashids.encode(link_id, nonce) != code:
            return None
        return DecodedCode(link_id=link_id, nonce=nonce)
