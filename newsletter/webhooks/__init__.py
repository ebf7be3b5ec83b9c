"""Outgoing webhooks: events written to an outbox in the transaction of what happened
(events.py), posted with an HMAC signature and retried with backoff (deliver.py), and the
operator's endpoints (endpoints.py)."""
