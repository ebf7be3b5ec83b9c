"""A test send: the digest once to one address, outside the ledger, as a reader gets it.

The message goes through the same fast path as every delivery (mail/fastpath.py,
DigestTemplate), with "[TEST] " before the subject, the configured DKIM signatures,
the plain bounce address as envelope sender (delivery 0 has no VERP address) and an
unsubscribe link (and preference link) for subscription 0, which is no one's. The
attributes a digest shows are the recipient's own when the address is a reader's, else
their names in brackets (digests/preview.py sample_attributes).

Named for what it builds, so a test module importing the function by name would have
pytest collect it: import the module (`from newsletter.sending import testsend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import make_msgid

from sqlalchemy import select
from sqlalchemy.orm import object_session

from newsletter.config import Settings
from newsletter.digests.preview import digest_template, sample_attributes
from newsletter.mail.dkim import DkimKey, keys_from_settings
from newsletter.mail.fastpath import Recipient
from newsletter.mail.verp import system_verp_address
from newsletter.models import Digest, MailingList, Subscriber

SUBJECT_PREFIX = "[TEST] "


def test_message(
    settings: Settings,
    mailing_list: MailingList,
    digest: Digest,
    to: str,
    *,
    dkim_keys: Sequence[DkimKey] | None = None,
    now: float | None = None,
) -> tuple[bytes, str]:
    """The raw test message of `digest` for address `to` and its envelope sender.

    `to` is used as given (normalise it first). Signed with the configured DKIM keys
    unless `dkim_keys` says otherwise; a key file that cannot be read raises
    ConfigError. Each call has a fresh Message-ID, so receivers never collapse two
    test sends, nor a test send with the delivery of the real one.
    """
    keys = keys_from_settings(settings) if dkim_keys is None else dkim_keys
    template = digest_template(
        settings,
        mailing_list,
        digest,
        subject=SUBJECT_PREFIX + digest.subject,
        dkim_keys=keys,
    )
    attributes = None
    if template.uses_attributes:
        # The recipient's own attributes when they are a reader, else sample values.
        session = object_session(digest)
        own = None
        if session is not None:
            own = session.scalar(select(Subscriber.attributes).where(Subscriber.email == to))
        attributes = sample_attributes(template, own)
    reader = Recipient(delivery_id=0, email=to, name="", subscription_id=0, attributes=attributes)
    raw = template.render(reader, now=now, message_id=make_msgid(domain=settings.sender_domain))
    # A return path of its own: a bounce of a test send is recognised and only counted.
    return raw, system_verp_address("t", digest.id, settings)
