"""Write the SDL to ``api/schema.graphql`` and the Markdown reference to
``docs/API_REFERENCE.md``: ``python -m vouch.api.export`` (``--check`` to diff)."""

from __future__ import annotations

import sys
from pathlib import Path

from vouch.api.reference import render
from vouch.api.schema import export_sdl

SDL_PATH = Path(__file__).resolve().parent / "schema.graphql"
REFERENCE_PATH = Path(__file__).resolve().parent.parent / "docs" / "API_REFERENCE.md"


def main(argv: list[str]) -> int:
    sdl = export_sdl()
    outputs = {SDL_PATH: sdl, REFERENCE_PATH: render(sdl)}
    if "--check" in argv:
        stale = [p.name for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        if stale:
            sys.stderr.write(f"{', '.join(stale)} out of date: run python -m vouch.api.export\n")
            return 1
        return 0
    for path, text in outputs.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
