"""Enumeration: can an attacker guess a live referral code? One million random well-formed
codes (real link ids, random 31-bit nonces) and one million random strings over the code
alphabet, checked against 10,000 live links. Pure codec work, no database: a code resolves
only if its (link id, nonce) pair is a live link's, exactly as the landing resolver requires.

    python -m bench.enumeration [--guesses 1000000]
"""

from __future__ import annotations

import argparse
import random
import secrets
import time

from vouch.core.codes import ALPHABET, NONCE_BITS, LinkCodec

LINKS = 10_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--guesses", type=int, default=1_000_000)
    args = parser.parse_args()
    codec = LinkCodec(secrets.token_urlsafe(32), 10)
    live = {(link_id, codec.new_nonce()) for link_id in range(1, LINKS + 1)}
    rng = random.Random(20261122)
    started = time.perf_counter()
    hits = 0
    for _ in range(args.guesses):
        guess = codec.encode(rng.randint(1, LINKS), rng.getrandbits(NONCE_BITS))
        decoded = codec.decode(guess)
        if decoded is not None and (decoded.link_id, decoded.nonce) in live:
            hits += 1
    well_formed_s = time.perf_counter() - started
    started = time.perf_counter()
    canonical = random_hits = 0
    for _ in range(args.guesses):
        guess = "".join(rng.choice(ALPHABET) for _ in range(10))
        decoded = codec.decode(guess)
        if decoded is not None:
            canonical += 1
            random_hits += (decoded.link_id, decoded.nonce) in live
    random_s = time.perf_counter() - started
    expected = args.guesses * LINKS / LINKS / 2**NONCE_BITS
    print("| guesses | count | links found | time | note |")
    print("| --- | --- | --- | --- | --- |")
    print(
        f"| random well-formed codes (real ids, random nonces) | {args.guesses:,} | {hits} "
        f"| {well_formed_s:.1f} s | expected {expected:.5f} |"
    )
    print(
        f"| random 10-character strings over the alphabet | {args.guesses:,} | {random_hits} "
        f"| {random_s:.1f} s | {canonical:,} even decoded canonically |"
    )


if __name__ == "__main__":
    main()
