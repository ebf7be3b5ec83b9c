"""Subscriptions: lists, subscribe, confirm, unsubscribe, erase, consent, tokens, and the
confirmation mail."""
