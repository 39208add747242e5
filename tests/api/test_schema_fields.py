"""Plain fields resolve by attribute in one call; fields with resolvers keep strawberry's."""

from __future__ import annotations

from graphql import GraphQLObjectType

from api.schema import build_schema


def test_plain_fields_read_their_attribute_directly() -> None:
    schema = build_schema(production=True)
    referral_type = schema._schema.type_map["Referral"]
    assert isinstance(referral_type, GraphQLObjectType)
    referral = referral_type.fields
    # plain fields: rewired to a direct getattr of the Python attribute name
    for name in ("id", "status", "createdAt", "advocate", "offerRedemption"):
        assert getattr(referral[name].resolve, "__name__", "") == "resolve", name
    # resolvers (with their scope checks and dataloaders) are strawberry's own
    for name in ("rewards", "opportunities", "program"):
        assert getattr(referral[name].resolve, "__name__", "") != "resolve", name

    class Source:
        created_at = "2026-11-22T00:00:00+00:00"

    resolve = referral["createdAt"].resolve
    assert resolve is not None
    assert resolve(Source(), None) == Source.created_at
