"""The ledger: buckets and their drain rule, balanced journal entries, two-phase holds.

Everything here is pure; `telbill.adapters.db.ledger_store` writes what it decides. It is the
only code that decides a balance change.
"""

from telbill.ledger.buckets import (
    Bucket,
    BucketKind,
    DrainPlan,
    DrainPolicy,
    Take,
    WalletDrain,
    drain_order,
    plan_drain,
    spendable,
)
from telbill.ledger.holds import HoldLine, HoldOutcome, Settlement, plan_release, plan_settlement
from telbill.ledger.journal import (
    JournalEntry,
    LedgerInvariantError,
    Posting,
    UnbalancedEntry,
    assert_balanced,
    drain_postings,
    transfer,
)

__all__ = [
    "Bucket",
    "BucketKind",
    "DrainPlan",
    "DrainPolicy",
    "HoldLine",
    "HoldOutcome",
    "JournalEntry",
    "LedgerInvariantError",
    "Posting",
    "Settlement",
    "Take",
    "UnbalancedEntry",
    "WalletDrain",
    "assert_balanced",
    "drain_order",
    "drain_postings",
    "plan_drain",
    "plan_release",
    "plan_settlement",
    "spendable",
    "transfer",
]
