"""Segments: saved filters over a list's readers in a small, safe expression language
(language.py parses, compile.py turns it into SQLAlchemy, actions.py are the operator's)."""
