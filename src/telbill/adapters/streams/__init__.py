"""Stream adapters: consume usage from message brokers."""
