"""Server-rendered microsite pages: Jinja2 templates loaded by path from ``site/``, UI strings
from ``site/locales/<lang>.json``, and the strict security headers every page carries."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from vouch.core.ids import encode_id

# Package data of vouch.site (the repository's site/ folder), in a checkout or an installed wheel.
SITE = Path(str(files("vouch") / "site"))
TEMPLATES = SITE / "templates"
STATIC = SITE / "static"
LOCALES = SITE / "locales"
DEFAULT_LOCALE = "en"
RENDER_CACHE_SIZE = 4096

# No inline script or style anywhere: everything the pages run or wear is a static file.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    # Codes are in our URLs: never leak them to the sites a friend goes on to.
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class Strings:
    """UI strings per language. English is complete; other languages fall back key by key."""

    def __init__(self, directory: Path = LOCALES) -> None:
        self.catalogs: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.json")):
            self.catalogs[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        if DEFAULT_LOCALE not in self.catalogs:
            raise RuntimeError(f"missing {LOCALES / (DEFAULT_LOCALE + '.json')}")

    def negotiate(self, accept_language: str | None) -> str:
        """The best available language for an ``Accept-Language`` header."""
        if not accept_language:
            return DEFAULT_LOCALE
        weighted: list[tuple[float, str]] = []
        for part in accept_language.split(",")[:12]:
            tag, _, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    quality = 0.0
            weighted.append((quality, tag.strip().lower().split("-")[0]))
        for _, lang in sorted(weighted, key=lambda item: -item[0]):
            if lang in self.catalogs:
                return lang
        return DEFAULT_LOCALE

    def translator(self, lang: str) -> Callable[..., str]:
        catalog = self.catalogs.get(lang, {})
        fallback = self.catalogs[DEFAULT_LOCALE]

        def t(key: str, **values: Any) -> str:
            text = catalog.get(key) or fallback.get(key)
            if text is None:
                raise KeyError(f"missing UI string {key!r}")
            return text.format(**values) if values else text

        return t


class Pages:
    """Renders templates with the request's language and the microsite's headers."""

    def __init__(self, public_base_url: str) -> None:
        self.env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            auto_reload=False,
        )
        self.env.globals["public_id"] = encode_id  # the opaque id of a row, as GraphQL shows it
        self.strings = Strings()
        self.public_base_url = public_base_url.rstrip("/")
        self._translators = {lang: self.strings.translator(lang) for lang in self.strings.catalogs}
        self._rendered: OrderedDict[tuple[str, str, Hashable], str] = OrderedDict()

    def translator_for(self, request: Request) -> Callable[..., str]:
        return self._translators[self.strings.negotiate(request.headers.get("accept-language"))]

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status_code: int = 200,
        cache_key: Hashable | None = None,
        fill: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """Render ``template``. With ``cache_key``, the HTML is rendered once per (template,
        language, key) and reused; per-request values go in as ``fill`` placeholders (they
        must be HTML-safe, e.g. tokens)."""
        lang = self.strings.negotiate(request.headers.get("accept-language"))
        if cache_key is None:
            html = self._render(template, lang, context)
        else:
            key = (template, lang, cache_key)
            cached = self._rendered.get(key)
            if cached is None:
                cached = self._render(template, lang, context)
                self._rendered[key] = cached
                if len(self._rendered) > RENDER_CACHE_SIZE:
                    self._rendered.popitem(last=False)
            html = cached
        for placeholder, value in (fill or {}).items():
            html = html.replace(placeholder, value)
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)

    def _render(self, template: str, lang: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(template).render(
            t=self._translators[lang], lang=lang, base_url=self.public_base_url, **context
        )
