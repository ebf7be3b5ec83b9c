"""Self-hosted newsletter delivery service."""

__version__ = "0.1.0"
