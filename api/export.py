"""Write the SDL to ``api/schema.graphql``: ``python -m api.export`` (``--check`` to diff)."""

from __future__ import annotations

import sys
from pathlib import Path

from api.schema import export_sdl

SDL_PATH = Path(__file__).resolve().parent / "schema.graphql"


def main(argv: list[str]) -> int:
    sdl = export_sdl()
    if "--check" in argv:
        if not SDL_PATH.exists() or SDL_PATH.read_text() != sdl:
            sys.stderr.write("api/schema.graphql is out of date: run python -m api.export\n")
            return 1
        return 0
    SDL_PATH.write_text(sdl)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
