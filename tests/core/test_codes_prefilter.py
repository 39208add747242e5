"""The cheap shape check in LinkCodec.decode rejects exactly what hashids would reject."""

from __future__ import annotations

import random

from hashids import Hashids

from vouch.core.codes import ALPHABET, LinkCodec


def _reference(codec: LinkCodec, code: str) -> tuple[int, int] | None:
    """Decoding without the shape check: hashids decode plus the canonical re-encode."""
    values = Hashids(salt="prefilter-salt", min_length=10, alphabet=ALPHABET).decode(code)
    if len(values) != 2 or codec.encode(*values) != code:
        return None
    return values[0], values[1]


def test_shape_check_keeps_every_real_code_and_agrees_on_random_strings() -> None:
    codec = LinkCodec("prefilter-salt", 10)
    rng = random.Random(7)
    for _ in range(2000):
        link_id, nonce = rng.randrange(1, 10**9), rng.randrange(0, 2**31)
        decoded = codec.decode(codec.encode(link_id, nonce))
        assert decoded is not None
        assert (decoded.link_id, decoded.nonce) == (link_id, nonce)
    for _ in range(3000):
        code = "".join(rng.choice(ALPHABET) for _ in range(rng.choice([10, 10, 11, 12, 16])))
        decoded = codec.decode(code)
        expected = _reference(codec, code)
        assert (None if decoded is None else (decoded.link_id, decoded.nonce)) == expected
