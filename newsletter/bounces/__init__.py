"""Bounce handling: parse DSNs, ARF complaints and auto-replies into per-recipient verdicts.

The parsing here is pure (bytes in, results out) so it can be tested without a database.
"""

from newsletter.bounces.parse import BounceResult, analyse
from newsletter.mail.verp import verp_token

__all__ = ["BounceResult", "analyse", "verp_token"]
