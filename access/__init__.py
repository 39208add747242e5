"""Who may call Vouch, and how retried requests get one effect: API keys, idempotency."""
