"""The Relay ``Node`` interface: every entity type has an opaque global id that ``node(id:)``
resolves back to it (see ``api.queries.node``)."""

from __future__ import annotations

import strawberry


@strawberry.interface(
    name="Node", description="An object with a global id: fetch it again with `node(id:)`."
)
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global id.")
