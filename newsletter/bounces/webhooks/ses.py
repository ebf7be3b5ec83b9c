"""Amazon SES notifications delivered by SNS over HTTPS.

Authentication is SNS's own: every message is signed (SignatureVersion 1: SHA1withRSA,
2: SHA256withRSA) with the key of a certificate at SigningCertURL. The certificate is
fetched only from ``https://sns.<region>.amazonaws.com/...pem`` (anything else could be
an attacker's certificate), and cached. A valid signature proves the message came from
SNS, not from *our* topic - anyone can create a topic - so the TopicArn must also be one
listed in NEWSLETTER_SES_TOPIC_ARN; without that setting the endpoint is off.

SubscriptionConfirmation: the SubscribeURL is logged for the operator; it is fetched
(confirming the subscription) only with NEWSLETTER_SES_CONFIRM_SUBSCRIPTIONS=true, and
only from the same SNS hosts. Payloads: SNS envelope as in "HTTP/HTTPS notification JSON
format", SES body as in "Amazon SES notification contents" (notificationType Bounce or
Complaint; event publishing's eventType accepted too).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from newsletter.bounces.classify import Kind
from newsletter.bounces.parse import BounceResult
from newsletter.bounces.verdict import verdict
from newsletter.bounces.webhooks import (
    BadPayload,
    Forbidden,
    NotConfigured,
    ProviderEvent,
    Unauthenticated,
)
from newsletter.config import Settings

log = logging.getLogger(__name__)
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$")
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_certs: dict[str, x509.Certificate] = {}
_lock = threading.Lock()


def is_sns_url(url: str, *, pem: bool = True) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.hostname is not None
        and _SNS_HOST.match(parts.hostname) is not None
        and parts.port in (None, 443)
        and not parts.username
        and (not pem or parts.path.endswith(".pem"))
    )


def download_certificate(url: str) -> bytes:
    """The one network call (tests replace it: the provider is not on the test machine)."""
    response = httpx.get(url, timeout=10, follow_redirects=False)
    response.raise_for_status()
    return response.content


def certificate(url: str) -> x509.Certificate:
    if not is_sns_url(url):
        raise Unauthenticated("SigningCertURL is not an Amazon SNS certificate URL")
    with _lock:
        cached = _certs.get(url)
    if cached is not None:
        return cached
    try:
        cert = x509.load_pem_x509_certificate(download_certificate(url))
    except (httpx.HTTPError, ValueError) as exc:
        raise Unauthenticated(
            f"signing certificate unavailable: {exc.__class__.__name__}"
        ) from None
    with _lock:
        _certs[url] = cert
    return cert


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    keys = _NOTIFICATION_KEYS if message.get("Type") == "Notification" else _SUBSCRIPTION_KEYS
    return "".join(f"{k}\n{message[k]}\n" for k in keys if message.get(k) is not None).encode()


def verify(message: Mapping[str, Any]) -> None:
    version = str(message.get("SignatureVersion", ""))
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)
    if algorithm is None:
        raise Unauthenticated("unsupported SNS SignatureVersion")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except binascii.Error:
        raise Unauthenticated("SNS signature is not base64") from None
    key = certificate(str(message.get("SigningCertURL", ""))).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Unauthenticated("SNS certificate does not hold an RSA key")
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise Unauthenticated("SNS signature does not match") from None


def parse(
    body: bytes, headers: Mapping[str, str], query: Mapping[str, str], settings: Settings
) -> list[ProviderEvent]:
    topics = {t.strip() for t in (settings.ses_topic_arn or "").split(",") if t.strip()}
    if not topics:
        raise NotConfigured("set NEWSLETTER_SES_TOPIC_ARN to accept SES notifications")
    try:
        message = json.loads(body)
    except ValueError:
        raise BadPayload("body is not JSON") from None
    if not isinstance(message, dict) or message.get("Type") not in (
        "Notification",
        "SubscriptionConfirmation",
        "UnsubscribeConfirmation",
    ):
        raise BadPayload("not an SNS message")
    verify(message)
    if message.get("TopicArn") not in topics:
        raise Forbidden("SNS topic is not one of NEWSLETTER_SES_TOPIC_ARN")
    if message["Type"] != "Notification":
        _subscription(message, settings)
        return []
    try:
        notification = json.loads(str(message.get("Message", "")))
    except ValueError:
        raise BadPayload("SNS Message is not SES JSON") from None
    if not isinstance(notification, dict):
        raise BadPayload("SNS Message is not SES JSON")
    return ses_events(notification)


def _subscription(message: Mapping[str, Any], settings: Settings) -> None:
    url = str(message.get("SubscribeURL", ""))
    log.warning("SNS %s for %s: SubscribeURL %s", message["Type"], message.get("TopicArn"), url)
    if (
        message["Type"] == "SubscriptionConfirmation"
        and settings.ses_confirm_subscriptions
        and is_sns_url(url, pem=False)
    ):
        try:
            httpx.get(url, timeout=10, follow_redirects=False).raise_for_status()
        except httpx.HTTPError as exc:
            log.error("confirming the SNS subscription failed: %s", exc.__class__.__name__)


def _message_id(mail: Mapping[str, Any]) -> str:
    common = mail.get("commonHeaders") or {}
    if isinstance(common, dict) and common.get("messageId"):
        return str(common["messageId"])
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value", ""))
    return ""


# SES's bounce subtypes that are its final word: the message, not the address, failed.
_TRANSIENT_FINAL: dict[str, tuple[Kind, str]] = {
    "MessageTooLarge": ("policy", "mesgtoobig"),
    "ContentRejected": ("policy", "contenterror"),
    "AttachmentRejected": ("policy", "contenterror"),
    "MailboxFull": ("soft", "mailboxfull"),
}


def ses_events(notification: Mapping[str, Any]) -> list[ProviderEvent]:
    """SES Bounce and Complaint notifications (Delivery and others are not failures)."""
    kind_name = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail") or {}
    if not isinstance(mail, dict):
        raise BadPayload("SES mail is not an object")
    message_id = _message_id(mail)
    if kind_name == "Bounce":
        bounce = notification.get("bounce")
        if not isinstance(bounce, dict) or not isinstance(bounce.get("bouncedRecipients"), list):
            raise BadPayload("SES bounce without bouncedRecipients")
        ref = str(bounce.get("feedbackId", ""))
        return [
            ProviderEvent(
                _bounce(bounce, r, message_id), message_id, f"{ref}:{r.get('emailAddress')}"
            )
            for r in bounce["bouncedRecipients"]
            if isinstance(r, dict) and r.get("emailAddress")
        ]
    if kind_name == "Complaint":
        complaint = notification.get("complaint")
        if not isinstance(complaint, dict) or not isinstance(
            complaint.get("complainedRecipients"), list
        ):
            raise BadPayload("SES complaint without complainedRecipients")
        feedback = str(complaint.get("complaintFeedbackType") or "abuse")
        kind: Kind = "ignore" if feedback == "not-spam" else "complaint"
        ref = str(complaint.get("feedbackId", ""))
        return [
            ProviderEvent(
                verdict(
                    str(r["emailAddress"]).lower(),
                    kind,
                    "feedback",
                    feedback_type=feedback,
                    message_id=message_id,
                ),
                message_id,
                f"{ref}:{r['emailAddress']}",
            )
            for r in complaint["complainedRecipients"]
            if isinstance(r, dict) and r.get("emailAddress")
        ]
    return []


def _bounce(
    bounce: Mapping[str, Any], recipient: Mapping[str, Any], message_id: str
) -> BounceResult:
    """SES's bounceType is its verdict: Permanent is hard, anything else soft, and a few
    Transient subtypes are final (the message was refused, or the mailbox is full)."""
    bounce_type, sub_type = bounce.get("bounceType"), str(bounce.get("bounceSubType"))
    kind: Kind
    final = bounce_type == "Transient" and sub_type in _TRANSIENT_FINAL
    if final:
        kind, reason = _TRANSIENT_FINAL[sub_type]
    elif bounce_type == "Permanent":
        kind, reason = "hard", "suppressed" if "Suppress" in sub_type else "userunknown"
    else:
        kind, reason = "soft", "undefined"
    return verdict(
        str(recipient["emailAddress"]).lower(),
        kind,
        reason,
        str(recipient.get("status") or ""),
        str(recipient.get("diagnosticCode") or ""),
        final=final,
        message_id=message_id,
        action=str(recipient.get("action") or ""),
        remote_mta=str(bounce.get("reportingMTA") or ""),
    )
