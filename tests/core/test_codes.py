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
