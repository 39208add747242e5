"""The advocacy engine: programs, advocates, signals, readiness, tiers, moments and asks."""
