"""Hostile link codes and landing paths: whatever hypothesis generates (unicode, overlong,
traversal, percent-encoding, non-canonical hashids, near misses of a real code) gets the one
404 page, never a 5xx; and 100,000 random well-formed codes (real link ids, random nonces)
find no link."""

from __future__ import annotations

import random
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from tests.factories import make_advocate, make_link, make_program
from tests.web.conftest import setup  # noqa: F401 - fixture reused
from vouch.core.codes import ALPHABET
from vouch.models import ReferralLink

HYPOTHESIS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


codes = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(alphabet=ALPHABET, min_size=1, max_size=40),
    st.text(alphabet=ALPHABET, min_size=200, max_size=3000),
    st.sampled_from(
        ["..", "../../etc/passwd", "%2e%2e%2f", "..%2f..%2fadmin", "%00", "~root", "\u202e"]
    ),
    st.builds(
        lambda a, b: f"{a}/{b}", st.text(alphabet=ALPHABET, max_size=12), st.text(max_size=8)
    ),
)


async def _not_found_page(client):
    response = await client.get("/r/zzzzzzzzzz")
    assert response.status_code == 404
    return response.text


@HYPOTHESIS
@given(code=codes)
async def test_generated_codes_get_the_same_404(client, session, code):
    reference = await _not_found_page(client)
    response = await client.get("/r/" + quote(code, safe="/%"))
    assert response.status_code < 500
    if response.status_code == 404 and response.url.path.startswith("/r/"):
        assert response.text in {reference, "Not Found"}
    assert response.status_code in {404, 405, 307, 308, 400} or response.url.path == "/r"


@HYPOTHESIS
@given(data=st.data())
async def test_near_misses_of_a_real_code_get_the_same_404(client, session, codec, setup, data):  # noqa: F811
    link = setup.link
    real = setup.code
    assert (await client.get(f"/r/{real}")).status_code == 200
    reference = await _not_found_page(client)
    i = data.draw(st.integers(0, len(real) - 1))
    c = data.draw(st.sampled_from(ALPHABET))
    variant = data.draw(
        st.sampled_from(
            [
                real[:i] + c + real[i + 1 :],
                real[:i] + real[i + 1 :],
                real[:i] + real[i] + real[i:],
                real.swapcase(),
                real + c,
                c + real,
                codec.encode(link.id, (link.nonce + 1 + i) % 2**31),
                codec.encode(link.id + 1 + i, link.nonce),
            ]
        )
    )
    if variant == real:
        return
    response = await client.get("/r/" + quote(variant, safe=""))
    assert response.status_code == 404
    assert response.text == reference


async def test_a_hundred_thousand_random_well_formed_codes_find_nothing(session, codec):
    program = await make_program(session)
    advocate = await make_advocate(session)
    links = [
        await make_link(session, codec, advocate=advocate, program=program, channel=f"c{i}")
        for i in range(50)
    ]
    ids = [link.id for link in links]
    real = {(link.id, link.nonce) for link in links}
    rng = random.Random(7)
    guesses: list[str] = []
    while len(guesses) < 100_000:
        pair = (rng.randint(min(ids), max(ids)), rng.getrandbits(31))
        if pair not in real:  # a 1-in-2**31 coincidence would be a true hit, not a guess
            guesses.append(codec.encode(*pair))
    assert all(codec.decode(g) is not None for g in guesses[:1000])  # well-formed, canonical
    hits = await session.scalar(
        text("SELECT count(*) FROM referral_links WHERE code = ANY(:codes)"), {"codes": guesses}
    )
    assert await session.scalar(select(func.count()).select_from(ReferralLink)) >= 50
    assert hits == 0
