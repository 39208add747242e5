from __future__ import annotations

from vouch.core.codes import LinkCodec


def test_round_trip_and_canonical_only() -> None:
    codec = LinkCodec("salt", 10)
    code = codec.encode(42, 123456)
    assert len(code) >= 10
    decoded = codec.decode(code)
    assert decoded is not None
    assert (decoded.link_id, decoded.nonce) == (42, 123456)


def test_rejects_malformed_and_foreign_codes() -> None:
    codec = LinkCodec("salt", 10)
    other = LinkCodec("another-salt", 10)
    for bad in ["", "x" * 33, "../etc/passwd", "héllo", "0OlI1", other.encode(1, 2)]:
        assert codec.decode(bad) is None
    single = codec._hashids.encode(42)  # one number: not a link code
    assert codec.decode(single) is None


def test_nonce_is_random() -> None:
    assert len({LinkCodec.new_nonce() for _ in range(50)}) > 45


def test_the_memoised_shuffle_gives_the_codes_hashids_gives_without_it() -> None:
    """``core.codes`` memoises hashids' alphabet shuffle; codes and their decoding are exactly
    what the unmemoised library gives, and the memo stays small (a few hundred shuffles)."""
    import random

    import hashids

    from vouch.core.codes import ALPHABET, NONCE_BITS

    memoised = hashids._reorder
    plain = memoised.__wrapped__
    rng = random.Random(7)
    pairs = [(rng.randrange(1, 10**12), rng.getrandbits(NONCE_BITS)) for _ in range(300)]
    codec = LinkCodec("a salt for the check", 10)
    with_memo = [codec.encode(*pair) for pair in pairs]
    hashids._reorder = plain
    try:
        reference = hashids.Hashids(salt="a salt for the check", min_length=10, alphabet=ALPHABET)
        assert with_memo == [reference.encode(*pair) for pair in pairs]
        assert [tuple(reference.decode(code)) for code in with_memo] == pairs
    finally:
        hashids._reorder = memoised
    assert [(d.link_id, d.nonce) for d in map(codec.decode, with_memo) if d] == pairs
    assert memoised.cache_info().currsize < 1000
