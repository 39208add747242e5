"""Mutation fields, one module per verb-noun; ``api.schema`` merges them into ``Mutation``."""
