"""Opaque public ids for the GraphQL edge; defined once in ``core.ids`` for every surface."""

from __future__ import annotations

from vouch.core.ids import decode_id, encode_id, split_id

__all__ = ["decode_id", "encode_id", "split_id"]
