"""One definition per noun, used by every counter, report, CSV and page (docs/REPORTS.md).

* A **referral** is a referred person attributed to a link, unless moderation rejected it:
  referrals held for moderation, re-attributed or erased still count; rejected ones count
  nowhere.
* A **customer** is a referral that ever reached won (it has a ``won`` event): a customer
  refunded or churned later stays a customer acquired — the reward cost was spent on it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists

from vouch.models import Referral, ReferralEvent
from vouch.models.enums import ReferralStatus


def is_referral(referral: Any = Referral) -> ColumnElement[bool]:
    """The row counts as a referral (``referral`` is the table or an alias of it)."""
    return referral.status != ReferralStatus.REJECTED  # type: ignore[no-any-return]


def is_customer(referral: Any = Referral) -> ColumnElement[bool]:
    """The referral counts as a customer: not rejected, and it ever reached won."""
    return is_referral(referral) & exists().where(
        ReferralEvent.referral_id == referral.id,
        ReferralEvent.to_status == ReferralStatus.WON,
    )
