"""What a query selects below the current field, read from the document (fragments included).

Lets a list resolver load a nested list for the whole page in one statement, and only when the
query asks for it. ``@skip``/``@include`` are not evaluated: a skipped field may be loaded for
nothing, never missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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


Fragments = Mapping[str, FragmentDefinitionNode]


def _reaches(nodes: Iterable[SelectionNode], path: tuple[str, ...], fragments: Fragments) -> bool:
    if not path:
        return True
    for node in nodes:
        selection_set = getattr(node, "selection_set", None)
        if selection_set is None:
            continue
        if _reaches_in(selection_set.selections, path, fragments, depth=0):
            return True
    return False


def _reaches_in(
    selections: Iterable[SelectionNode],
    path: tuple[str, ...],
    fragments: Fragments,
    depth: int,
) -> bool:
    if depth > 20:  # fragment cycles are refused by validation; this only bounds the walk
        return False
    head, rest = path[0], path[1:]
    for selection in selections:
        if isinstance(selection, FieldNode):
            if selection.name.value == head and _reaches([selection], rest, fragments):
                return True
        elif isinstance(selection, InlineFragmentNode):
            if _reaches_in(selection.selection_set.selections, path, fragments, depth + 1):
                return True
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None and _reaches_in(
                fragment.selection_set.selections, path, fragments, depth + 1
            ):
                return True
    return False
