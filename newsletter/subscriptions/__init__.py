"""Subscriptions: lists, subscribe, confirm, unsubscribe, erase, consent, tokens, the confirmation mail."""
