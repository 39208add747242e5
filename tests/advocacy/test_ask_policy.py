"""The ask policy without a database (advocacy/ask_policy.py): plain objects stand in for
advocates, programs and asks, and no fixture touches PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from vouch.advocacy import ask_policy as policy
from vouch.advocacy.moments import GuardCode, MomentConfig, MomentKind
from vouch.core.errors import ValidationFailed
from vouch.models.enums import AskStatus, AskType, Team

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def advocate(**kw: Any) -> Any:
    return SimpleNamespace(
        **({"id": 7, "consent_referral": True, "opted_in_extra_asks": False} | kw)
    )


def program(**kw: Any) -> Any:
    values = {"id": 3, "frequency_cap_days": 30, "frequency_cap_count": 2, "tier1_cap_count": 4}
    return SimpleNamespace(**(values | kw))


def ask(n: int, **kw: Any) -> Any:
    values = {
        "id": n,
        "program_id": 3,
        "status": AskStatus.QUEUED,
        "priority": 10,
        "queued_at": NOW - timedelta(days=1),
        "sent_at": None,
        "fallback_of_id": None,
        "automated": True,
    }
    return SimpleNamespace(**(values | kw))


def test_the_matrix_picks_by_tier_and_respects_referral_consent():
    moment = MomentKind.NPS_PROMOTER
    assert policy.ask_type_for(moment, 1, advocate()) is AskType.TESTIMONIAL
    assert policy.ask_type_for(moment, 2, advocate()) is AskType.REFERRAL_INVITE
    # no consent to refer: a share instead at tier 2, nothing at tier 1's referral slot
    assert policy.ask_type_for(moment, 2, advocate(consent_referral=False)) is AskType.SOCIAL_SHARE
    assert policy.ask_type_for(moment, None, advocate()) is None


def test_priority_is_the_types_plus_the_moments_boost():
    plain = policy.priority_of(AskType.REVIEW, "no-such-moment")
    assert plain == policy.TYPE_PRIORITY[AskType.REVIEW]
    boosted = policy.priority_of(AskType.REVIEW, MomentKind.NPS_PROMOTER)
    assert boosted == plain + policy.MOMENT_BOOST.get(MomentKind.NPS_PROMOTER, 0)


def test_the_cap_counts_sent_asks_in_the_window_except_fallbacks():
    sent = [
        ask(1, sent_at=NOW - timedelta(days=29)),
        ask(2, sent_at=NOW - timedelta(days=2)),
        ask(3, sent_at=NOW - timedelta(days=1), fallback_of_id=2),  # part of ask 2's answer
        ask(4, sent_at=NOW - timedelta(days=31)),  # outside the window
    ]
    cap = policy.cap_state(sent, program=program(), advocate=advocate(), tier=2, now=NOW)
    assert (cap.limit, cap.used, cap.full) == (2, 2, True)
    assert cap.until == NOW - timedelta(days=29) + timedelta(days=30)  # the oldest slot frees
    guard = policy.cap_guard(cap)
    assert guard is not None
    assert guard.code is GuardCode.FREQUENCY_CAP
    # a Tier 1 advocate who opted into more has the higher limit
    more = policy.cap_state(
        sent, program=program(), advocate=advocate(opted_in_extra_asks=True), tier=1, now=NOW
    )
    assert (more.limit, more.full, policy.cap_guard(more)) == (4, False, None)


def test_queued_asks_expire_after_the_ttl_and_the_best_is_sent_first():
    config = MomentConfig(queue_ttl_days=10)
    old = ask(1, queued_at=NOW - timedelta(days=11))
    low = ask(2, priority=5)
    high_later = ask(3, priority=20, queued_at=NOW - timedelta(hours=1))
    high_earlier = ask(4, priority=20, queued_at=NOW - timedelta(hours=2))
    manual = ask(5, priority=99, automated=False)
    asks = [old, low, high_later, high_earlier, manual]
    assert policy.expire_queued(asks, NOW, config) == 1
    assert old.status is AskStatus.EXPIRED
    assert policy.best_queued(asks, 3, automated=True) is high_earlier
    assert policy.best_queued(asks, 3, automated=False) is manual
    assert policy.best_queued(asks, 99, automated=False) is None


def test_the_next_ask_to_show_is_one_awaiting_an_answer_before_any_queued():
    awaiting = ask(1, status=AskStatus.SENT, priority=1)
    queued = ask(2, priority=50)
    assert policy.pick_next([queued, awaiting]) is awaiting
    assert policy.pick_next([queued]) is queued
    assert policy.pick_next([ask(3, status=AskStatus.DECLINED)]) is None


def test_a_candidate_carries_team_priority_and_a_bounded_trigger_key():
    row = policy.candidate(
        advocate(), program(), AskType.CASE_STUDY, MomentKind.RENEWAL_SIGNED, NOW, "k" * 500
    )
    assert row["team"] == Team.MARKETING.value  # the team of any ask the table does not name
    assert row["priority"] == policy.priority_of(AskType.CASE_STUDY, MomentKind.RENEWAL_SIGNED)
    assert (row["status"], len(row["trigger_key"]), row["automated"]) == ("queued", 128, True)
    explicit = policy.candidate(
        advocate(), program(), AskType.REVIEW, MomentKind.FIRST_VALUE, NOW, "k", team=Team.SALES
    )
    assert explicit["team"] == Team.SALES.value


def test_the_lifecycle_moves_and_the_parsers():
    # a queued ask is sent by the engine (send_ask), not moved: it can only be cancelled
    assert policy.TRANSITIONS[AskStatus.QUEUED] == {AskStatus.CANCELLED}
    assert AskStatus.DECLINED in policy.TRANSITIONS[AskStatus.SENT]
    for terminal in policy.TERMINAL:
        assert not policy.TRANSITIONS.get(terminal)
    assert policy.parse_ask_type("REVIEW") is AskType.REVIEW
    with pytest.raises(ValidationFailed):
        policy.parse_team("nobody")
