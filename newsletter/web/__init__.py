"""The FastAPI app: public pages, admin API, webhooks."""
