"""The friend's journey over HTTP: offer page, click recording, cookies, claim, bad paths."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.factories import make_advocate, make_link
from tests.web.conftest import (
    HUMAN_UA,
    claim,
    count,
    csrf_from,
    make_setup,
    open_offer,
)
from vouch.core.clock import utcnow
from vouch.core.security import hash_ip
from vouch.models import (
    AttributionDecision,
    Click,
    OfferRedemption,
    RateLimitHit,
    Referral,
    ReferralEvent,
)
from vouch.web.app import Overrides, create_app

ROOT = Path(__file__).resolve().parents[2]
SLACK_UA = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"


def shown_code(html: str) -> str:
    match = re.search(r'id="redemption-code"[^>]*>([A-Z0-9-]+)<', html)
    assert match, "no redemption code on the page"
    return match.group(1)


async def written(session) -> list[int]:
    return [
        await count(session, m)
        for m in (Referral, ReferralEvent, AttributionDecision, OfferRedemption)
    ]


async def clicks(app, session) -> list[Click]:
    await app.state.clicks.flush()
    return list((await session.scalars(select(Click).order_by(Click.id))).all())


async def test_offer_page_names_the_advocate_by_first_name_only(client, setup, settings):
    response = await open_offer(client, setup.code)
    assert response.status_code == 200
    html = response.text
    assert "<h1>Grace invited you</h1>" in html
    assert "Hopper" not in html
    assert "grace.hopper" not in html
    assert '<p class="offer" id="offer">20% off your first year</p>' in html
    assert "New customers only. One per company." in html
    assert f'action="/r/{setup.code}/claim"' in html
    assert len(response.content) < 50 * 1024
    # Rich previews.
    assert (
        '<meta property="og:title" content="Grace sent you an offer: 20% off your first year">'
        in html
    )
    assert f'<meta property="og:url" content="http://testserver/r/{setup.code}">' in html
    assert '<meta name="twitter:card" content="summary_large_image">' in html
    # No inline script or style, nothing from another origin.
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert " style=" not in html
    assert "<style" not in html
    assert "http://" not in html.replace("http://testserver", "")
    assert "https://" not in html


async def test_offer_page_security_headers(client, setup):
    response = await open_offer(client, setup.code)
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


async def test_static_assets_are_served_locally(client):
    css = await client.get("/static/site.css")
    js = await client.get("/static/copy.js")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert js.status_code == 200
    assert "navigator.clipboard" in js.text
    assert (await client.get("/static/share.js")).status_code == 200


async def test_click_is_recorded_with_channel_utm_hashed_ip_and_visitor(
    client, setup, app, session, settings
):
    response = await client.get(
        f"/r/{setup.code}",
        params={"ch": "LinkedIn", "utm_source": "newsletter", "utm_campaign": "q4"},
        headers={"user-agent": HUMAN_UA, "referer": "https://www.linkedin.com/feed/"},
    )
    assert response.status_code == 200
    visitor = response.cookies["vouch_vid"]
    assert re.fullmatch(r"[0-9a-f]{32}", visitor)
    [click] = await clicks(app, session)
    now = utcnow()
    assert (click.link_id, click.program_id, click.channel) == (
        setup.link.id,
        setup.program.id,
        "linkedin",
    )
    assert click.utm == {"utm_source": "newsletter", "utm_campaign": "q4"}
    assert click.ip_hash == hash_ip(settings.resolved_secret(), "127.0.0.1", now.date())
    assert "127.0.0.1" not in (click.ip_hash or "")
    assert (click.user_agent, click.is_bot, click.bot_reason) == (HUMAN_UA, False, None)
    assert (click.visitor_id, click.referrer_host) == (visitor, "www.linkedin.com")
    assert abs(click.occurred_at - now) < timedelta(minutes=1)

    # A second visit keeps the same visitor id and does not re-issue it.
    again = await open_offer(client, setup.code)
    assert "vouch_vid" not in again.cookies
    second = (await clicks(app, session))[1]
    assert (second.visitor_id, second.channel) == (visitor, "direct")


async def test_unfurlers_get_the_page_but_no_cookies_and_count_as_bots(client, setup, app, session):
    response = await client.get(f"/r/{setup.code}", headers={"user-agent": SLACK_UA})
    assert response.status_code == 200
    assert 'property="og:title"' in response.text
    assert "vouch_attr" not in response.cookies
    assert "vouch_vid" not in response.cookies
    [click] = await clicks(app, session)
    assert (click.is_bot, click.bot_reason, click.visitor_id) == (True, "slack", None)


async def test_every_kind_of_bad_code_gets_the_same_404(client, session, codec, count_queries):
    world = await make_setup(session, codec)
    revoked = await make_link(
        session,
        codec,
        advocate=await make_advocate(session),
        program=world.program,
        status="revoked",
        channel="email",
    )
    draft = await make_setup(session, codec, status="draft")
    await session.commit()
    bad = {
        "malformed": "not-a-code!",
        "too_long": "a" * 64,
        "non_canonical": world.code + "a",
        "unknown": codec.encode(world.link.id + 10_000, 42),
        "wrong_nonce": codec.encode(world.link.id, world.link.nonce ^ 7),
        "revoked": revoked.code,
        "draft_program": draft.code,
    }
    bodies = set()
    for code in bad.values():
        response = await client.get(f"/r/{code}", headers={"user-agent": HUMAN_UA})
        assert response.status_code == 404
        assert "This link isn&#39;t available" in response.text
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "vouch_vid" not in response.cookies
        bodies.add(response.text)
    assert len(bodies) == 1
    count_queries.reset()
    for code in (bad["malformed"], bad["too_long"], bad["non_canonical"]):
        assert (await client.get(f"/r/{code}")).status_code == 404
    assert count_queries.count == 0


async def test_paused_and_ended_offers_get_an_honest_page(client, session, codec, app):
    paused = await make_setup(session, codec, status="paused")
    ended = await make_setup(session, codec, offer_expires_at=utcnow() - timedelta(days=1))
    page = await open_offer(client, paused.code)
    assert page.status_code == 200
    assert "<h1>This offer is paused</h1>" in page.text
    assert "<form" not in page.text
    page = await open_offer(client, ended.code)
    assert page.status_code == 200
    assert "<h1>This offer has ended</h1>" in page.text
    assert "<form" not in page.text
    assert 'name="csrf"' not in page.text
    # A claim posted anyway (stale tab) is refused and writes nothing.
    token_page = await client.get("/claim")
    response = await claim(client, paused.code, csrf=csrf_from(token_page.text))
    assert response.status_code == 410
    assert "This offer is paused" in response.text
    assert await written(session) == [0, 0, 0, 0]


async def test_claim_shows_a_code_and_reloading_or_claiming_again_shows_the_same(
    client, setup, session
):
    response = await claim(client, setup.code, email="Katherine.Johnson@Example.org")
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/claimed?t=")
    page = await client.get(location)
    assert page.status_code == 200
    code = shown_code(page.text)
    redemption = await session.scalar(select(OfferRedemption))
    assert code == redemption.code
    assert "Here is your code for 20% off your first year." in page.text
    reload = await client.get(location)
    assert shown_code(reload.text) == code
    again = await claim(client, setup.code, email="katherine.johnson@example.org")
    assert again.status_code == 303
    page2 = await client.get(again.headers["location"])
    assert shown_code(page2.text) == code
    assert await written(session) == [1, 1, 1, 1]
    assert 'id="redeemed"' not in page.text
    redemption.redeemed_at = utcnow()
    redemption.redeemed_by = "acct-1"
    await session.commit()
    used = await client.get(location)
    assert f"This code was already used on {redemption.redeemed_at:%d %B %Y}." in used.text
    referral = await session.scalar(select(Referral))
    assert (referral.email, referral.name, referral.company, referral.advocate_id) == (
        "Katherine.Johnson@example.org",
        "Katherine Johnson",
        "NASA",
        setup.advocate.id,
    )
    decision = await session.scalar(select(AttributionDecision))
    assert (decision.evidence, decision.link_id) == ("click", setup.link.id)


@pytest.mark.parametrize(
    ("fields", "message", "field"),
    [
        ({"email": ""}, "Please enter your email address.", "email"),
        ({"email": "nope@"}, "Please enter a valid email address, like name@example.com.", "email"),
        ({"consent": False}, "Please agree to the terms to claim the offer.", "consent"),
        ({"name": "n" * 250}, "Please keep your name and company under 200 characters.", "name"),
        (
            {"email": "grace.hopper+x@gmail.com"},
            "You can&#39;t claim an offer with your own referral link.",
            "email",
        ),
    ],
)
async def test_bad_claims_show_the_form_again_and_write_nothing(
    client, setup, session, fields, message, field
):
    response = await claim(client, setup.code, **fields)
    assert response.status_code == 422
    assert '<div class="alert" role="alert" id="form-error">' in response.text
    assert message in response.text
    assert f'id="{field}" name="{field}"' in response.text
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', response.text)
    if fields.get("email"):
        assert f'value="{fields["email"]}"' in response.text
    assert await written(session) == [0, 0, 0, 0]


async def test_claims_without_a_valid_csrf_token_are_refused(client, setup, session):
    page = await open_offer(client, setup.code)
    token = csrf_from(page.text)
    # Missing token, forged token, and a token that does not match the cookie.
    for csrf in ("", "forged", token[:-2] + "xx"):
        response = await claim(client, setup.code, csrf=csrf)
        assert response.status_code == 403
        assert "Your session expired. Please submit the form again." in response.text
    client.cookies.set("vouch_csrf", "0" * 32)
    response = await claim(client, setup.code, csrf=token)
    assert response.status_code == 403
    assert await written(session) == [0, 0, 0, 0]
    assert await count(session, RateLimitHit) == 0


async def test_non_form_bodies_are_refused(client, setup, session):
    await open_offer(client, setup.code)
    response = await client.post(f"/r/{setup.code}/claim", json={"email": "a@b.org"})
    assert response.status_code == 403
    assert await written(session) == [0, 0, 0, 0]


async def test_claims_are_rate_limited_per_hashed_ip(settings, sessionmaker, session, codec):
    import httpx

    limited = create_app(
        settings.model_copy(update={"claim_rate_limit_per_hour": 2}),
        Overrides(sessionmaker=sessionmaker),
    )
    world = await make_setup(session, codec)
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await claim(c, world.code, email="one@example.org")).status_code == 303
        assert (await claim(c, world.code, email="grace.hopper@gmail.com")).status_code == 422
        response = await claim(c, world.code, email="three@example.org")
        assert response.status_code == 429
        assert "Too many attempts from your network." in response.text
    assert await written(session) == [1, 1, 1, 1]
    hit = await session.scalar(select(RateLimitHit))
    assert hit.hits == 3
    assert hit.bucket.startswith("claim:")
    assert "127.0.0.1" not in hit.bucket


@pytest.mark.parametrize(("model", "winner"), [("first_touch", 0), ("last_touch", 1)])
async def test_cookie_touches_decide_which_link_wins(client, session, codec, model, winner):
    world = await make_setup(session, codec, attribution_model=model)
    other = await make_advocate(session, first_name="Ada", email="ada@example.com")
    second = await make_link(session, codec, advocate=other, program=world.program)
    await session.commit()
    await open_offer(client, world.code)
    await open_offer(client, str(second.code))
    response = await claim(client, str(second.code), email="friend@example.org")
    assert response.status_code == 303
    referral = await session.scalar(select(Referral))
    expected = [(world.advocate.id, world.link.id), (other.id, second.id)][winner]
    assert (referral.advocate_id, referral.link_id) == expected
    decision = await session.scalar(select(AttributionDecision))
    assert (decision.rule, decision.evidence) == (model, "click")


async def test_consent_programs_set_no_tracking_cookie_and_carry_the_code_in_the_url(
    client, session, codec, app
):
    world = await make_setup(session, codec, require_tracking_consent=True)
    page = await open_offer(client, world.code)
    assert page.status_code == 200
    assert set(page.cookies.keys()) == {"vouch_csrf"}
    assert f'action="/r/{world.code}/claim"' in page.text
    assert "This page sets no tracking cookies" in page.text
    [click] = await clicks(app, session)
    assert click.visitor_id is None
    response = await claim(client, world.code, csrf=csrf_from(page.text))
    assert response.status_code == 303
    assert "vouch_attr" not in response.cookies
    referral = await session.scalar(select(Referral))
    assert (referral.link_id, referral.visitor_id, referral.click_id) == (world.link.id, None, None)
    decision = await session.scalar(select(AttributionDecision))
    assert decision.evidence == "form"


async def test_cross_device_code_entry(client, setup, session):
    assert (await client.get("/r", follow_redirects=False)).headers["location"] == "/claim"
    page = await client.get("/claim")
    assert page.status_code == 200
    assert 'id="code" name="code"' in page.text
    csrf = csrf_from(page.text)
    form = {"csrf": csrf, "code": setup.code, "email": "other-device@example.org", "consent": "yes"}
    response = await client.post("/claim", data=form)
    assert response.status_code == 303
    referral = await session.scalar(select(Referral))
    assert (referral.source, referral.link_id, referral.visitor_id) == (
        "code_entry",
        setup.link.id,
        None,
    )
    decision = await session.scalar(select(AttributionDecision))
    assert decision.evidence == "code_entry"


async def test_cross_device_unknown_code_shows_the_form_again(client, setup, session, codec):
    csrf = csrf_from((await client.get("/claim")).text)
    for code in ("nonsense", codec.encode(setup.link.id + 999, 1)):
        form = {"csrf": csrf, "code": code, "email": "x@example.org", "consent": "yes"}
        response = await client.post("/claim", data=form)
        assert response.status_code == 404
        assert "We couldn&#39;t find that code. Please check it and try again." in response.text
        assert f'value="{code}"' in response.text
    assert await written(session) == [0, 0, 0, 0]


async def test_claimed_page_rejects_forged_tokens(client):
    for token in ("", "MQ.forged.sig", "x" * 300):
        response = await client.get("/claimed", params={"t": token})
        assert response.status_code == 404
        assert "This link isn&#39;t available" in response.text


async def test_strings_live_in_the_locale_file(client, setup):
    catalog = json.loads((ROOT / "site/locales/en.json").read_text())
    page = await open_offer(client, setup.code)
    assert catalog["claim.submit"] in page.text
    templates = ROOT / "site/templates"
    used = set()
    for path in templates.glob("*.html"):
        used |= set(re.findall(r'\bt\(["\']([a-z_.]+)["\']', path.read_text()))
    dynamic = {key for key in used if key.endswith(".")}
    assert dynamic == {"channel."}
    assert used - dynamic - set(catalog) == set()
    assert {f"channel.{c}" for c in ("email", "linkedin", "x", "whatsapp", "sms")} <= set(catalog)


async def test_pages_follow_the_browsers_language(client, setup):
    german = {"accept-language": "de-DE,de;q=0.9,en;q=0.5", "user-agent": HUMAN_UA}
    page = await client.get(f"/r/{setup.code}", headers=german)
    assert page.status_code == 200
    assert '<html lang="de">' in page.text
    assert "<h1>Grace hat Sie eingeladen</h1>" in page.text
    csrf = csrf_from(page.text)
    response = await client.post(
        f"/r/{setup.code}/claim",
        data={"csrf": csrf, "email": "nope@", "consent": "yes"},
        headers=german,
    )
    assert response.status_code == 422
    assert "Bitte geben Sie eine gültige E-Mail-Adresse ein" in response.text
    missing = await client.get("/r/nonsense", headers={"accept-language": "fr, de;q=0.8"})
    assert "Dieser Link ist nicht verfügbar" in missing.text
    english = await client.get("/r/nonsense", headers={"accept-language": "fr"})
    assert '<html lang="en">' in english.text


def test_every_language_has_every_string():
    catalogs = {p.stem: json.loads(p.read_text()) for p in (ROOT / "site/locales").glob("*.json")}
    assert set(catalogs) == {"en", "de"}
    assert set(catalogs["de"]) == set(catalogs["en"])


async def test_a_cached_link_is_served_without_the_database(client, setup, count_queries):
    assert (await open_offer(client, setup.code)).status_code == 200
    count_queries.reset()
    again = await open_offer(client, setup.code)
    assert again.status_code == 200
    assert "<h1>Grace invited you</h1>" in again.text
    assert count_queries.count == 0


def test_csrf_tokens_expire_and_are_bound_to_the_cookie(settings):
    from vouch.web.microsite.landing import CSRF_MAX_AGE, Cookies

    cookies = Cookies.create(settings.resolved_secret(), secure=True)
    token = cookies.csrf_token("a" * 32, 1_000_000.0)
    assert cookies.csrf_valid("a" * 32, token, 1_000_000.0 + CSRF_MAX_AGE) is True
    assert cookies.csrf_valid("a" * 32, token, 1_000_000.0 + CSRF_MAX_AGE + 1) is False
    assert cookies.csrf_valid("b" * 32, token, 1_000_000.0) is False
    assert cookies.csrf_valid("a" * 32, "zz." + token.split(".")[1], 1_000_000.0) is False
    assert cookies.csrf_valid("a" * 32, token, 1_000_000.0 - 3600) is False


def test_attribution_cookies_are_signed_and_expire_and_old_ones_still_read(settings):
    """v2 cookies round-trip, refuse any change, expire after a year; cookies written before
    v2 (itsdangerous) are still honoured; anything else reads as no touches."""
    import time as clock

    from starlette.requests import Request

    from vouch.web.microsite.landing import ATTRIBUTION_COOKIE, TOUCHES_MAX_AGE, Cookies

    cookies = Cookies.create(settings.resolved_secret(), secure=True)

    def read(value: str) -> list[list[int]]:
        header = (b"cookie", f"{ATTRIBUTION_COOKIE}={value}".encode())
        return cookies.read_touches(Request({"type": "http", "headers": [header]}))

    now = int(clock.time())
    touches = [[7, 3, now - 60, now - 30], [9, 3, now - 20, now]]
    value = cookies.dump_touches(touches, now)
    assert value.startswith("2.")
    assert read(value) == touches
    assert read(cookies.dump_touches([], now)) == []
    body, mac = value.rsplit(".", 1)
    assert read(body.replace("_3_", "_4_", 1) + "." + mac) == []  # another program
    assert read(body + "." + mac[::-1]) == []
    assert read(value + "0") == []
    assert read(cookies.dump_touches(touches, now - TOUCHES_MAX_AGE - 1)) == []
    other = Cookies.create("another secret of enough length for the test", secure=True)
    assert read(other.dump_touches(touches, now)) == []
    assert read(cookies.attribution.dumps(touches)) == touches  # written before v2
    assert read("2.1.1_1_1_1.x") == []
    assert read("not a cookie") == []


def test_claimed_tokens_and_claim_cookies_are_signed_per_purpose_and_old_ones_still_read(
    settings,
):
    """The /claimed token and the claims cookie (v2: decimal ids under an HMAC of their own
    purpose) round-trip, refuse any change, another purpose's value and expiry; values issued
    before v2 (itsdangerous) are still honoured until they expire."""
    import time as clock

    from starlette.requests import Request

    from vouch.web.microsite.landing import CLAIMED_MAX_AGE, CLAIMS_COOKIE, Cookies

    cookies = Cookies.create(settings.resolved_secret(), secure=True)

    def here(value: str) -> list[int]:
        header = (b"cookie", f"{CLAIMS_COOKIE}={value}".encode())
        return cookies.claimed_here(Request({"type": "http", "headers": [header]}))

    token = cookies.claimed_token(42)
    assert token.startswith("2.")
    assert cookies.claimed_id(token) == 42
    body, mac = token.rsplit(".", 1)
    assert cookies.claimed_id(body.replace(".42", ".43") + "." + mac) is None
    assert cookies.claimed_id(body + "." + mac[::-1]) is None
    stale = cookies.dump_ids("vouch.claimed.v2", [42], int(clock.time()) - CLAIMED_MAX_AGE - 1)
    assert cookies.claimed_id(stale) is None
    assert cookies.claimed_id(cookies.dump_ids("vouch.claims.v2", [42], int(clock.time()))) is None
    assert cookies.claimed_id(cookies.dump_ids("vouch.claimed.v2", [1, 2], 0)) is None
    assert cookies.claimed_id(cookies.claimed.dumps(42)) == 42  # issued before v2
    assert cookies.claimed_id("x" * 201) is None

    value = cookies.dump_ids("vouch.claims.v2", [3, 5, 8], int(clock.time()))
    assert here(value) == [3, 5, 8]
    assert here(cookies.claimed_token(3)) == []  # the other purpose
    assert here(value.replace("~5~", "~6~")) == []
    assert here(cookies.claims.dumps([3, 5])) == [3, 5]  # written before v2
    assert here("2.1.1.x") == []
    assert here("forged.value") == []


async def test_cookies_are_http_only_and_secure_on_https(settings, sessionmaker, session, codec):
    import httpx

    https_app = create_app(
        settings.model_copy(update={"public_base_url": "https://vouch.example"}),
        Overrides(sessionmaker=sessionmaker),
    )
    world = await make_setup(session, codec)
    transport = httpx.ASGITransport(app=https_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        response = await open_offer(c, world.code)
    headers = response.headers.get_list("set-cookie")
    assert sorted(h.split("=", 1)[0] for h in headers) == ["vouch_attr", "vouch_csrf", "vouch_vid"]
    for header in headers:
        assert "HttpOnly" in header
        assert "Secure" in header
    assert any(h.startswith("vouch_csrf=") and "SameSite=Strict" in h for h in headers)
    assert any(h.startswith("vouch_attr=") and "Max-Age=2592000" in h for h in headers)
    # The visitor id and the CSRF cookie come from one random draw: two different tokens.
    values = {h.split("=", 1)[0]: h.split("=", 1)[1].split(";", 1)[0] for h in headers}
    assert re.fullmatch(r"[0-9a-f]{32}", values["vouch_vid"])
    assert re.fullmatch(r"[0-9a-f]{32}", values["vouch_csrf"])
    assert values["vouch_vid"] != values["vouch_csrf"]


async def test_links_of_one_program_share_a_render_but_each_shows_its_own_advocate(
    client, session, codec, setup
):
    """The offer page is rendered once per program; each link's code and advocate's name are
    filled in, the name escaped as the template would escape it."""
    tricky = await make_advocate(
        session, first_name='<b>"Ada" & Co</b>', last_name="L", email="ada@example.com"
    )
    nameless = await make_advocate(session, first_name=None, last_name="X", email="x@example.com")
    links = [
        await make_link(session, codec, advocate=tricky, program=setup.program),
        await make_link(session, codec, advocate=nameless, program=setup.program),
    ]
    await session.commit()
    first = await open_offer(client, setup.code)
    assert "Grace" in first.text
    tricky_page = await open_offer(client, str(links[0].code))
    nameless_page = await open_offer(client, str(links[1].code))
    for page, link in ((first, setup.link), (tricky_page, links[0]), (nameless_page, links[1])):
        assert page.status_code == 200
        assert f'action="/r/{link.code}/claim"' in page.text
        assert f"/r/{link.code}/preview.png" in page.text
        assert "__vouch_" not in page.text
        assert csrf_from(page.text)
    assert "&lt;b&gt;&#34;Ada&#34; &amp; Co&lt;/b&gt;" in tricky_page.text
    assert "<b>" not in tricky_page.text
    assert "Grace" not in tricky_page.text
    assert "Grace" not in nameless_page.text
    assert "Ada" not in nameless_page.text
    assert setup.code not in tricky_page.text
