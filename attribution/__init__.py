"""The closed loop: links, clicks, referrals, conversions, opportunities, revenue, rewards."""
