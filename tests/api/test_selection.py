"""``selects``: does the query reach a nested field, through fragments and inline fragments;
``selected_names``: the fields right below, likewise."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

from api.selection import selected_names, selects


def _info(document: str) -> Any:
    parsed = parse(document)
    operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = operation.selection_set.selections[0]
    return SimpleNamespace(_raw_info=SimpleNamespace(field_nodes=[root], fragments=fragments))


def test_direct_fragment_and_inline_selections() -> None:
    assert selects(_info("{ referrals { nodes { rewards { side } } } }"), "nodes", "rewards")
    assert not selects(_info("{ referrals { nodes { id } } }"), "nodes", "rewards")
    assert not selects(_info("{ referrals { rewards { id } } }"), "nodes", "rewards")
    spread = "{ referrals { ...P } } fragment P on C { nodes { ...R } } fragment R on X { rewards { id } }"
    assert selects(_info(spread), "nodes", "rewards")
    inline = "{ referrals { nodes { ... on Referral { rewards { id } } } } }"
    assert selects(_info(inline), "nodes", "rewards")
    assert selects(
        _info("{ referrals { edges { node { rewards { id } } } } }"), "edges", "node", "rewards"
    )


def test_the_names_selected_right_below() -> None:
    document = (
        "{ me { externalId links { referralCount } ...F ... on Advocate { nextAsk { type } } } }"
        " fragment F on Advocate { points }"
    )
    assert selected_names(_info(document)) == {"externalId", "links", "points", "nextAsk"}
    assert selected_names(_info("{ me { externalId } }")) == {"externalId"}
