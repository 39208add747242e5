"""The committed SDL is the schema: regenerate with `python -m vouch.api.export` when this fails."""

from __future__ import annotations

from graphql import build_schema as parse_sdl

from vouch.api.export import SDL_PATH, main
from vouch.api.schema import build_schema, export_sdl


def test_committed_sdl_matches_the_schema():
    assert SDL_PATH.read_text() == export_sdl(), (
        "api/schema.graphql drifted: run python -m vouch.api.export"
    )
    assert main(["--check"]) == 0


def test_every_field_and_argument_is_described():
    schema = parse_sdl(export_sdl())
    missing = []
    for name, type_ in schema.type_map.items():
        if name.startswith("__") or not hasattr(type_, "fields"):
            continue
        if type_.description is None and name not in {"Query", "Mutation"}:
            missing.append(name)
        for field_name, field in type_.fields.items():
            if field.description is None:
                missing.append(f"{name}.{field_name}")
    assert missing == []


def test_production_schema_has_the_same_shape():
    assert build_schema(production=True).as_str() == build_schema(production=False).as_str()
