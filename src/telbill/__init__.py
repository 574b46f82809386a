"""telbill: a telephony billing engine (rating, ledger, real-time charging)."""

__version__ = "0.1.0"
