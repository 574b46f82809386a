"""System accounts keep no running balance.

Cash, revenue, VAT payable and the other system accounts are posted to by almost every
transaction of every wallet; keeping their `balance` column up to date made every call end
and every CDR chunk wait for the same row lock. Their balance is now the sum of their
postings (`ledger_store.system_balance`) and the column stays 0. Downgrade recomputes it.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE ledger_accounts SET balance = 0 WHERE kind = 'system'")


def downgrade() -> None:
    op.execute(
        "UPDATE ledger_accounts SET balance = COALESCE((SELECT SUM(p.amount) FROM postings p"
        " WHERE p.ledger_account_id = ledger_accounts.id), 0) WHERE kind = 'system'"
    )
