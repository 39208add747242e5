"""What a query selects below the current field, read from the document (fragments included).

Lets a list resolver load a nested list for the whole page in one statement, and only when the
query asks for it. ``@skip``/``@include`` are not evaluated: a skipped field may be loaded for
nothing, never missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionNode,
)

from vouch.api.context import Info


def selected_names(info: Info, *path: str) -> frozenset[str]:
    """The names of the fields selected right below the current field, or below ``path``
    under it (one walk of the document, for a resolver that checks several)."""
    raw = info._raw_info
    nodes: list[FieldNode] = list(raw.field_nodes)
    for name in path:
        nodes = [field for field in _children(nodes, raw.fragments) if field.name.value == name]
    return frozenset(field.name.value for field in _children(nodes, raw.fragments))


def _children(nodes: Iterable[FieldNode], fragments: Fragments) -> Iterator[FieldNode]:
    for node in nodes:
        if node.selection_set is not None:
            yield from _fields(node.selection_set.selections, fragments, depth=0)


Fragments = Mapping[str, FragmentDefinitionNode]


def _fields(
    selections: Iterable[SelectionNode], fragments: Fragments, depth: int
) -> Iterator[FieldNode]:
    """The fields of one level of a selection set, through inline fragments and spreads."""
    if depth > 20:  # fragment cycles are refused by validation; this only bounds the walk
        return
    for selection in selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set.selections, fragments, depth + 1)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set.selections, fragments, depth + 1)
