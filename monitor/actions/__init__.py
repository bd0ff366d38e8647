"""Actions: deliver notifications (apprise) and retraining triggers (signed webhooks)."""
