"""Explicit GraphQL object types, each with a ``from_model`` constructor."""
