from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from vouch.attribution.links import ClickSummary


@strawberry.type(
    name="ClickSummary", description="Clicks on a link or on all of an advocate's links."
)
class ClickSummaryType:
    total: int = strawberry.field(description="Every recorded click, bots included.")
    humans: int = strawberry.field(description="Clicks not classified as bots.")
    bots: int = strawberry.field(description="Clicks classified as bots (not attributed).")
    last_clicked_at: datetime | None = strawberry.field(
        description="When the latest click happened (UTC); null if never clicked."
    )

    @classmethod
    def from_summary(cls, s: ClickSummary) -> Self:
        return cls(total=s.total, humans=s.humans, bots=s.bots, last_clicked_at=s.last_clicked_at)
