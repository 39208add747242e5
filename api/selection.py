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

from api.context import Info


def selects(info: Info, *path: str) -> bool:
    """Whether the current field's selection reaches ``path`` (GraphQL names), e.g.
    ``selects(info, "nodes", "rewards")``."""
    raw = info._raw_info
    return _reaches(raw.field_nodes, path, raw.fragments)


def selected_names(info: Info) -> frozenset[str]:
    """The names of the fields selected right below the current field (one walk of the
    document, for a resolver that checks several)."""
    raw = info._raw_info
    return frozenset(
        field.name.value
        for node in raw.field_nodes
        if node.selection_set is not None
        for field in _fields(node.selection_set.selections, raw.fragments, depth=0)
    )


Fragments = Mapping[str, FragmentDefinitionNode]


def _reaches(nodes: Iterable[SelectionNode], path: tuple[str, ...], fragments: Fragments) -> bool:
    if not path:
        return True
    head, rest = path[0], path[1:]
    for node in nodes:
        selection_set = getattr(node, "selection_set", None)
        if selection_set is None:
            continue
        for field in _fields(selection_set.selections, fragments, depth=0):
            if field.name.value == head and _reaches([field], rest, fragments):
                return True
    return False


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
