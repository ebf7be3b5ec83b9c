"""Engagement, privacy first: signed click redirects, an opt-in open pixel, machine opens
told apart from people, and sunsetting readers who stopped reading."""
