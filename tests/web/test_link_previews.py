"""Share links unfurl with a large image, and unfurlers (HeadlessChrome included) get no
cookie at all."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.web.conftest import HUMAN_UA, make_setup

UNFURLERS = {
    "slack": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "imessage": "Mozilla/5.0 (compatible; facebookexternalhit/1.1 Facebot Twitterbot/1.0)",
    "headless": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/156.0.0.0 Safari/537.36",
}


@pytest.mark.parametrize("agent", sorted(UNFURLERS))
async def test_unfurlers_get_no_cookie_at_all(client, setup, agent):
    response = await client.get(f"/r/{setup.code}", headers={"user-agent": UNFURLERS[agent]})
    assert response.status_code == 200
    assert 'property="og:title"' in response.text
    assert response.headers.get_list("set-cookie") == []


async def test_headless_chrome_counts_as_a_bot(client, setup, app, session):
    from tests.web.test_landing import clicks

    await client.get(f"/r/{setup.code}", headers={"user-agent": UNFURLERS["headless"]})
    [click] = await clicks(app, session)
    assert (click.is_bot, click.bot_reason, click.visitor_id) == (True, "headless_browser", None)


async def test_share_link_unfurls_with_a_large_image_of_the_offer(client, session, codec):
    setup = await make_setup(session, codec, offer_title="20% off your first year")
    page = await client.get(f"/r/{setup.code}", headers={"user-agent": HUMAN_UA})
    html = page.text
    assert '<meta name="twitter:card" content="summary_large_image">' in html
    image_url = f"http://testserver/r/{setup.code}/preview.png"
    assert f'<meta property="og:image" content="{image_url}">' in html
    assert '<meta property="og:image:width" content="1200">' in html
    assert '<meta property="og:image:height" content="630">' in html
    assert f'<meta name="twitter:image" content="{image_url}">' in html
    assert 'property="og:image:alt" content="20% off your first year"' in html

    image = await client.get(f"/r/{setup.code}/preview.png", headers={"user-agent": HUMAN_UA})
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.headers.get_list("set-cookie") == []
    assert "max-age" in image.headers["cache-control"]
    picture = Image.open(io.BytesIO(image.content))
    assert (picture.format, picture.size) == ("PNG", (1200, 630))

    # per program: another program's offer draws another picture
    other = await make_setup(session, codec, name="Partners", offer_title="A free month")
    other_image = await client.get(f"/r/{other.code}/preview.png")
    assert other_image.status_code == 200
    assert other_image.content != image.content
    missing = await client.get("/r/not-a-code!/preview.png")
    assert missing.status_code == 404


UPDATE = """mutation($id: ID!, $url: String) {
  updateProgram(id: $id, input: {previewImageUrl: $url}) {
    program { previewImageUrl } errors { code field message }
  }
}"""


async def test_a_program_can_have_its_own_preview_image(client, session, codec):
    from tests.api.graphql import gql
    from tests.factories import make_api_key
    from vouch.api.ids import encode_id

    setup = await make_setup(session, codec, offer_title="20% off your first year")
    admin = await make_api_key(session, scopes=["admin"])
    pid = encode_id("Program", setup.program.id)
    own = "https://cdn.example.com/referral/og-card.png"

    refused = {
        "http://cdn.example.com/card.png",
        "javascript:alert(1)",
        "/relative/card.png",
        "https://user:pass@cdn.example.com/card.png",
        "https://cdn.example.com/a card.png",
        "https://cdn.example.com/" + "x" * 2048,
    }
    for bad in sorted(refused):
        out = (await gql(client, UPDATE, {"id": pid, "url": bad}, token=admin))["data"]
        assert out["updateProgram"]["program"] is None, bad
        assert [(e["code"], e["field"]) for e in out["updateProgram"]["errors"]] == [
            ("INVALID", "previewImageUrl")
        ], bad

    out = (await gql(client, UPDATE, {"id": pid, "url": own}, token=admin))["data"]
    assert out["updateProgram"] == {"program": {"previewImageUrl": own}, "errors": []}
    html = (await client.get(f"/r/{setup.code}", headers={"user-agent": HUMAN_UA})).text
    assert f'<meta property="og:image" content="{own}">' in html
    assert f'<meta name="twitter:image" content="{own}">' in html
    assert "og:image:width" not in html  # its size is the image's own

    # an empty string goes back to the generated offer card (a link not yet in this worker's
    # landing cache shows it; cached ones follow when the change is announced at commit)
    out = (await gql(client, UPDATE, {"id": pid, "url": ""}, token=admin))["data"]
    assert out["updateProgram"] == {"program": {"previewImageUrl": None}, "errors": []}
    from tests.factories import make_link

    fresh = await make_link(
        session, codec, advocate=setup.advocate, program=setup.program, channel="email"
    )
    html = (await client.get(f"/r/{fresh.code}", headers={"user-agent": HUMAN_UA})).text
    assert (
        f'<meta property="og:image" content="http://testserver/r/{fresh.code}/preview.png">' in html
    )
