"""Plain fields resolve by attribute in one call, resolvers without arguments are called
directly; resolvers with arguments keep strawberry's wrapper."""

from __future__ import annotations

import pytest
import strawberry
from graphql import GraphQLObjectType
from strawberry.types.base import get_object_definition

from vouch.api.schema import VouchSchema, build_schema
from vouch.api.speed import STATIC_INFO, StaticInfo, direct_attribute_fields


def test_plain_fields_read_their_attribute_directly() -> None:
    schema = build_schema(production=True)
    referral_type = schema._schema.type_map["Referral"]
    assert isinstance(referral_type, GraphQLObjectType)
    referral = referral_type.fields
    # plain fields: rewired to a direct getattr of the Python attribute name
    for name in ("id", "status", "createdAt", "advocate", "offerRedemption"):
        assert getattr(referral[name].resolve, "__name__", "") == "resolve", name
    # resolvers keep strawberry's wrapper (calling them directly was measured and dropped)
    for name in ("opportunities", "revenue", "program"):
        assert getattr(referral[name].resolve, "__name__", "") != "resolve", name

    # a row-backed type's field: the value the instance holds, else computed from its row
    from types import SimpleNamespace

    from vouch.api.types.referral import ReferralType

    resolve = referral["createdAt"].resolve
    assert resolve is not None
    lazy = ReferralType.lazy(_m=SimpleNamespace(created_at="2026-11-22T00:00:00+00:00"))
    assert resolve(lazy, None) == "2026-11-22T00:00:00+00:00"
    held = ReferralType.lazy(_m=None, created_at="2026-11-23T00:00:00+00:00")
    assert resolve(held, None) == "2026-11-23T00:00:00+00:00"


def test_row_backed_types_compute_every_field_they_declare() -> None:
    from vouch.api.types.advocate import AdvocateType
    from vouch.api.types.link import ReferralLinkType
    from vouch.api.types.referral import OfferRedemptionType, ReferralType
    from vouch.api.types.reward import RewardType

    for cls in (ReferralType, AdvocateType, ReferralLinkType, OfferRedemptionType, RewardType):
        definition = get_object_definition(cls, strict=True)
        declared = {
            f.python_name
            for f in definition.fields
            # underscored: private data preloaded with the object (e.g. a link's stats)
            if f.base_resolver is None and not f.python_name.startswith("_")
        }
        private = {n for n in cls.__annotations__ if n.endswith("db_id")}
        assert declared | private == set(cls.FIELDS), cls


def test_a_field_with_a_default_cannot_be_computed() -> None:
    import pytest

    from vouch.api.types.rows import RowBacked, computed_fields

    @strawberry.type
    class Thing(RowBacked):
        name: str = "default"

    with pytest.raises(TypeError, match="cannot be computed"):
        computed_fields(Thing, {"name": lambda o: o._m.name})


@strawberry.type
class Item:
    name: str
    tags: list[str]
    size: int | None


class _BrokenItem:
    """What a buggy type would hand GraphQL: reading ``size`` raises."""

    name = "broken"
    tags = ["b"]

    @property
    def size(self) -> int:
        raise ValueError("size is broken")


async def _later(value: str) -> str:
    return value


@strawberry.type
class _Query:
    @strawberry.field
    def item(self, info: strawberry.Info) -> Item:
        assert info.field_name == "item"  # a resolver that reads its info gets the real one
        assert info.context == {"who": "test"}
        return Item(name=None, tags=["a"], size=1)  # type: ignore[arg-type]  # a broken resolver

    @strawberry.field
    def broken(self) -> Item:
        return _BrokenItem()  # type: ignore[return-value]

    @strawberry.field
    def pending(self) -> Item:
        return Item(name=_later("later"), tags=[], size=None)  # type: ignore[arg-type]


async def test_leaf_attribute_fields_take_the_short_path_and_complete_as_graphql_core_does() -> (
    None
):
    """Leaf fields read by attribute skip graphql-core's per-field set-up; null checks, errors
    (message, path, the rest of the object kept) and awaitable values behave as before, and
    fields with resolvers still get a full info."""
    schema = VouchSchema(query=_Query, production=False)
    direct_attribute_fields(schema)
    item_type = schema._schema.type_map["Item"]
    assert isinstance(item_type, GraphQLObjectType)
    static = item_type.fields["name"].extensions[STATIC_INFO]
    name_type = item_type.fields["name"].type
    assert static == StaticInfo("name", name_type, item_type, name_type.of_type)
    assert STATIC_INFO not in item_type.fields["tags"].extensions  # lists keep the full path

    result = await schema.execute("{ item { tags name } }", context_value={"who": "test"})
    assert result.data is None
    assert result.errors is not None
    assert [e.message for e in result.errors] == [
        "Cannot return null for non-nullable field Item.name."
    ]
    assert result.errors[0].path == ["item", "name"]

    broken = await schema.execute("{ broken { name size tags } }")
    assert broken.data == {"broken": {"name": "broken", "size": None, "tags": ["b"]}}
    assert broken.errors is not None
    assert [(e.message, e.path) for e in broken.errors] == [("size is broken", ["broken", "size"])]

    pending = await schema.execute("{ pending { name size } }")
    assert pending.errors is None
    assert pending.data == {"pending": {"name": "later", "size": None}}


def test_schema_refuses_strawberry_extensions_it_would_not_run() -> None:
    from strawberry.extensions import MaskErrors

    from vouch.api.schema import Mutation, Query

    with pytest.raises(TypeError, match="does not run strawberry schema extensions"):
        VouchSchema(query=Query, mutation=Mutation, extensions=[MaskErrors()], production=True)
