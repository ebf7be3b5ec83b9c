"""What the operator previews is the message a reader gets, byte for byte but the fields.

A preview renders the digest through the sending fast path (mail/fastpath.py,
DigestTemplate) for a sample reader and reads the parts back out of those very bytes
with the standard library's parser: there is no second way of filling in the fields,
so nothing the preview shows can differ from what is sent except the reader's values
(and the per-message Date, Message-ID and DKIM signature). The sample reader's
attributes are their names in brackets ("[city]"); its preference and unsubscribe links
are those of subscription 0, which is nobody's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default

from newsletter.config import Settings
from newsletter.digests.render import GMAIL_CLIP, Composition
from newsletter.mail.dkim import DkimKey, keys_from_settings
from newsletter.mail.fastpath import DigestTemplate, Recipient
from newsletter.models import Digest, MailingList

SAMPLE_EMAIL = "reader@example.com"

# Delivery 0 has no VERP address (the envelope sender is the plain bounce address) and
# subscription 0 none in the database, so the sample's unsubscribe link unsubscribes no one.
SAMPLE_READER = Recipient(delivery_id=0, email=SAMPLE_EMAIL, name="", subscription_id=0)


@dataclass(frozen=True)
class Preview:
    """One rendered message and its parts, decoded from the message's own bytes."""

    subject: str  # the Subject header, decoded
    raw: bytes  # the complete message, as DigestTemplate.render gives it for the reader
    html: str  # the text/html part, decoded (line ends as stored: "\n")
    text: str  # the text/plain part, decoded
    envelope_sender: str
    reader: Recipient

    @property
    def html_bytes(self) -> int:
        """Size of the decoded HTML, which is what Gmail measures against GMAIL_CLIP."""
        return len(self.html.encode())

    @property
    def text_bytes(self) -> int:
        return len(self.text.encode())

    @property
    def message_bytes(self) -> int:
        return len(self.raw)

    @property
    def clipped(self) -> bool:
        """Gmail would hide the end of this message behind "[Message clipped]"."""
        return self.html_bytes > GMAIL_CLIP


def sample_attributes(
    template: DigestTemplate, own: Mapping[str, object] | None = None
) -> dict[str, object]:
    """Values for the attributes a digest shows: `own` (a real reader's) where it has
    them, else the attribute's name in brackets ("[city]"), so the operator sees where
    each goes; the fallback shows only to real readers without the attribute."""
    values: dict[str, object] = {name: f"[{name}]" for name, _ in template.attributes}
    values.update({k: v for k, v in (own or {}).items() if v is not None and v != ""})
    return values


def digest_template(
    settings: Settings,
    mailing_list: MailingList,
    digest: Digest | Composition,
    *,
    subject: str | None = None,
    dkim_keys: Sequence[DkimKey] = (),
) -> DigestTemplate:
    """The fast-path template of a stored digest, or of a composition not stored yet
    (digest id 0), for the list it goes to; `subject` overrides the digest's."""
    return DigestTemplate(
        settings=settings,
        digest_id=digest.id if isinstance(digest, Digest) else 0,
        list_slug=mailing_list.slug,
        list_name=mailing_list.name,
        subject=digest.subject if subject is None else subject,
        text=digest.text,
        html=digest.html,
        dkim_keys=dkim_keys,
    )


def parse_message(raw: bytes) -> EmailMessage:
    return BytesParser(policy=default).parsebytes(raw)


def part_content(message: EmailMessage, subtype: str) -> str:
    """The decoded text/<subtype> body of a message, with "\\n" line ends."""
    part = message.get_body((subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        raise ValueError(f"the message has no text/{subtype} part")
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def preview_message(
    settings: Settings,
    mailing_list: MailingList,
    digest: Digest | Composition,
    *,
    reader: Recipient = SAMPLE_READER,
    dkim_keys: Sequence[DkimKey] | None = None,
    now: float | None = None,
) -> Preview:
    """The message `reader` would get of `digest` (stored, or composed and not stored).

    Signed with the configured DKIM keys unless `dkim_keys` says otherwise (pass () to
    skip signing); a key file that cannot be read raises ConfigError as a send would.
    """
    keys = keys_from_settings(settings) if dkim_keys is None else dkim_keys
    template = digest_template(settings, mailing_list, digest, dkim_keys=keys)
    if reader.attributes is None and template.uses_attributes:
        reader = replace(reader, attributes=sample_attributes(template))
    raw = template.render(reader, now=now)
    message = parse_message(raw)
    return Preview(
        subject=str(message["Subject"]),
        raw=raw,
        html=part_content(message, "html"),
        text=part_content(message, "plain"),
        envelope_sender=template.envelope_sender(reader.delivery_id),
        reader=reader,
    )
