"""``/widget/demo``: the advocate widget embedded in a stand-in product page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from vouch.core.security import TokenError, WidgetTokens
from vouch.web.pages import Pages

HOW_TO = (
    "This demo needs a widget token: run `vouch demo` (it prints a ready link), or mint one with "
    "the createWidgetToken mutation and open /widget/demo?token=...\n"
)


class WidgetDemo:
    def __init__(self, *, pages: Pages, tokens: WidgetTokens) -> None:
        self.pages = pages
        self.tokens = tokens

    def routes(self) -> list[BaseRoute]:
        return [Route("/widget/demo", self.demo, methods=["GET"])]

    async def demo(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            self.tokens.verify(token[:512])
        except TokenError as exc:
            return PlainTextResponse(f"{exc}.\n{HOW_TO}", status_code=400)
        return self.pages.render(request, "widget_demo.html", {"token": token})
