"""Placeholder: the outbox relay lands in a later commit."""
