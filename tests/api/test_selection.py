"""``selected_names``: the fields right below the current field or below a path under it,
through fragment spreads and inline fragments."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

from vouch.api.selection import selected_names


def _info(document: str) -> Any:
    parsed = parse(document)
    operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = operation.selection_set.selections[0]
    return SimpleNamespace(_raw_info=SimpleNamespace(field_nodes=[root], fragments=fragments))


def test_names_below_a_path_through_fragments_and_inline_fragments() -> None:
    def below_nodes(document: str) -> frozenset[str]:
        return selected_names(_info(document), "nodes")

    assert below_nodes("{ referrals { nodes { rewards { side } } } }") == {"rewards"}
    assert below_nodes("{ referrals { nodes { id } } }") == {"id"}
    assert below_nodes("{ referrals { rewards { id } } }") == set()
    spread = "{ referrals { ...P } } fragment P on C { nodes { ...R } } fragment R on X { rewards { id } }"
    assert below_nodes(spread) == {"rewards"}
    inline = "{ referrals { nodes { ... on Referral { link { code } } } nodes { id } } }"
    assert below_nodes(inline) == {"link", "id"}
    edges = "{ referrals { edges { node { rewards { id } } } } }"
    assert selected_names(_info(edges), "edges", "node") == {"rewards"}
    assert selected_names(_info(edges), "edges", "nope") == set()


def test_the_names_selected_right_below() -> None:
    document = (
        "{ me { externalId links { referralCount } ...F ... on Advocate { nextAsk { type } } } }"
        " fragment F on Advocate { points }"
    )
    assert selected_names(_info(document)) == {"externalId", "links", "points", "nextAsk"}
    assert selected_names(_info("{ me { externalId } }")) == {"externalId"}
