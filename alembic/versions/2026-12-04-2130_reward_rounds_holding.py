"""reward rounds, holding periods, review flags; idempotency keys scoped to the caller

Rewards gain ``round`` (a referral's reward round: bumped when its credit moves to another
advocate or when a deal is won again after falling back), and the exactly-once key becomes
(rule, referral, trigger_ref, round). Rewards also gain ``held_until`` (the rule's holding
period) and ``review_reason`` (a fulfilled reward held for review after re-attribution);
rules gain ``holding_days``; referrals gain ``reward_round``. Idempotency keys gain ``owner``
(the credential) and are unique per (owner, key); existing keys keep their operation as owner.

Revision ID: 0005_money_a_rewards
Revises: 0004_click_batches
Create Date: 2026-12-04 21:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_money_a_rewards"
down_revision: str | Sequence[str] | None = "0004_click_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "referrals", sa.Column("reward_round", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "reward_rules", sa.Column("holding_days", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_reward_rules_holding_range"), "reward_rules", "holding_days BETWEEN 0 AND 365"
    )
    op.add_column("rewards", sa.Column("round", sa.Integer(), server_default="0", nullable=False))
    op.add_column("rewards", sa.Column("held_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("rewards", sa.Column("review_reason", sa.Text(), nullable=True))
    op.drop_constraint(
        op.f("uq_rewards_rule_id_referral_id_trigger_ref"), "rewards", type_="unique"
    )
    op.create_unique_constraint(
        op.f("uq_rewards_rule_id_referral_id_trigger_ref_round"),
        "rewards",
        ["rule_id", "referral_id", "trigger_ref", "round"],
    )
    op.create_index(
        "ix_rewards_held_pending",
        "rewards",
        ["held_until"],
        postgresql_where=sa.text("state = 'pending' AND held_until IS NOT NULL"),
    )
    op.add_column(
        "idempotency_keys",
        sa.Column("owner", sa.String(length=64), server_default="", nullable=False),
    )
    op.execute("UPDATE idempotency_keys SET owner = 'legacy:' || scope")
    op.drop_constraint(op.f("uq_idempotency_keys_scope_key"), "idempotency_keys", type_="unique")
    op.create_unique_constraint(
        op.f("uq_idempotency_keys_owner_key"), "idempotency_keys", ["owner", "key"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_idempotency_keys_owner_key"), "idempotency_keys", type_="unique")
    # Keys reused by several callers for one operation cannot all survive the old constraint.
    op.execute(
        "DELETE FROM idempotency_keys a USING idempotency_keys b"
        " WHERE a.scope = b.scope AND a.key = b.key AND a.id > b.id"
    )
    op.create_unique_constraint(
        op.f("uq_idempotency_keys_scope_key"), "idempotency_keys", ["scope", "key"]
    )
    op.drop_column("idempotency_keys", "owner")
    op.drop_index("ix_rewards_held_pending", table_name="rewards")
    op.drop_constraint(
        op.f("uq_rewards_rule_id_referral_id_trigger_ref_round"), "rewards", type_="unique"
    )
    # Only the first round of a key fits the old constraint; later rounds go.
    op.execute("DELETE FROM rewards WHERE round > 0")
    op.create_unique_constraint(
        op.f("uq_rewards_rule_id_referral_id_trigger_ref"),
        "rewards",
        ["rule_id", "referral_id", "trigger_ref"],
    )
    op.drop_column("rewards", "review_reason")
    op.drop_column("rewards", "held_until")
    op.drop_column("rewards", "round")
    op.drop_constraint(op.f("ck_reward_rules_holding_range"), "reward_rules", type_="check")
    op.drop_column("reward_rules", "holding_days")
    op.drop_column("referrals", "reward_round")
