"""The per-reader fields of a stored digest: markers where a reader's own values go.

The composer renders and inlines a digest once, leaving these markers in both parts;
they are plain ASCII without '=' or spaces, so they survive MIME encoding of the
template. Filling them in has one implementation, the sending fast path
(newsletter/mail/fastpath.py, DigestTemplate): sending, the operator's preview
(digests/preview.py) and the test send (sending/testsend.py) all render through it.
"""

from __future__ import annotations

NAME = "%%NL_NAME%%"
EMAIL = "%%NL_EMAIL%%"
UNSUBSCRIBE_URL = "%%NL_UNSUBSCRIBE_URL%%"
ALL = (NAME, EMAIL, UNSUBSCRIBE_URL)
