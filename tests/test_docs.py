"""Every GraphQL example in the docs is valid against the schema, so the guides cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = build_schema((ROOT / "api" / "schema.graphql").read_text())
BLOCKS = [
    (path.relative_to(ROOT).as_posix(), i, block)
    for path in [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
    for i, block in enumerate(re.findall(r"```graphql\n(.*?)```", path.read_text(), re.S))
]


def test_the_docs_have_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize(("path", "index", "block"), BLOCKS, ids=[f"{p}#{i}" for p, i, _ in BLOCKS])
def test_graphql_example_is_valid(path, index, block):
    errors = validate(SCHEMA, parse(block))
    assert [e.message for e in errors] == []


def test_curl_examples_embed_valid_graphql():
    for path in sorted((ROOT / "docs").rglob("*.md")):
        for query in re.findall(r'"query":"((?:[^"\\]|\\.)*)"', path.read_text()):
            errors = validate(SCHEMA, parse(query.encode().decode("unicode_escape")))
            assert [e.message for e in errors] == [], path.name
