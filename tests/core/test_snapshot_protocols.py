"""Each snapshot protocol names exactly its table's columns, with the model's types."""

from __future__ import annotations

import typing

import pytest

from vouch.models import (
    Advocate,
    Ask,
    Conversion,
    OfferRedemption,
    Opportunity,
    Referral,
    ReferralEvent,
    ReferralLink,
    RevenueEvent,
    Reward,
    snapshots,
)


@pytest.mark.parametrize(
    "model",
    [
        Referral,
        ReferralEvent,
        Advocate,
        ReferralLink,
        OfferRedemption,
        Reward,
        Ask,
        Conversion,
        Opportunity,
        RevenueEvent,
    ],
)
def test_a_protocol_per_model_with_every_column(model):
    protocol = getattr(snapshots, f"{model.__name__}Snapshot")
    columns = [c.key for c in model.__table__.columns]
    members = [name for name, value in vars(protocol).items() if isinstance(value, property)]
    assert members == columns
    for name in columns:
        annotation = typing.get_type_hints(getattr(protocol, name).fget)["return"]
        mapped = typing.get_type_hints(model)[name]
        assert typing.get_args(mapped)[0] == annotation, name
