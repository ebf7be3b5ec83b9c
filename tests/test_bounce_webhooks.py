"""`POST /webhooks/bounces/{provider}` over HTTP with each provider's documented payloads,
signed the way that provider signs (SNS certificate, SendGrid ECDSA, Mailgun HMAC,
Postmark basic auth), and refused with nothing changed when the signature is wrong.

Only the HTTP fetch of the SNS signing certificate is replaced: Amazon is not on the test
machine. The certificate is one the test makes, served for an sns.*.amazonaws.com URL.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.bounces.webhooks import ses
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.models import BounceEvent
from tests.bounce_support import (
    bounce_settings_fixture,  # noqa: F401 - the bounce_settings fixture
    is_suppressed,
    send_digest,
    subscriber_state,
)
from tests.conftest import reset_caches

PAYLOADS = Path(__file__).parent / "fixtures" / "webhooks"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-bounces"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000test.pem"
MAILGUN_KEY = "key-mailgun-test-signing"
WEBHOOK_SECRET = "postmark-shared-secret"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


# Keys and certificates --------------------------------------------------------------


@pytest.fixture(scope="module")
def sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def client(
    bounce_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    sns_key: tuple[rsa.RSAPrivateKey, bytes],
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> Iterator[TestClient]:
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    monkeypatch.setenv("NEWSLETTER_SES_TOPIC_ARN", TOPIC)
    monkeypatch.setenv("NEWSLETTER_MAILGUN_SIGNING_KEY", MAILGUN_KEY)
    monkeypatch.setenv("NEWSLETTER_SENDGRID_PUBLIC_KEY", base64.b64encode(public).decode())
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_SECRET", WEBHOOK_SECRET)
    reset_caches()
    fetched: list[str] = []

    def download(url: str) -> bytes:  # the stand-in for Amazon's certificate server
        fetched.append(url)
        assert url == CERT_URL
        return sns_key[1]

    monkeypatch.setattr(ses, "download_certificate", download)
    ses._certs.clear()
    from newsletter.web.app import create_app

    with TestClient(create_app()) as test_client:
        test_client.fetched = fetched  # type: ignore[attr-defined]
        yield test_client


def _events() -> list[tuple[str | None, str, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(BounceEvent.subscriber_id, BounceEvent.kind, BounceEvent.source)
        ).all()
    return [(str(r[0]), r[1], r[2]) for r in rows]


def _rejections(client: TestClient) -> list[tuple[str, str, int]]:
    from tests.conftest import get_settings

    body = client.get(
        "/api/bounces", headers={"Authorization": f"Bearer {get_settings().admin}"}
    ).json()
    return [(r["source"], r["reason"], r["count"]) for r in body["rejected"]]


# SES via SNS --------------------------------------------------------------------------


def sns_message(
    key: rsa.RSAPrivateKey, body: dict[str, Any], *, version: str = "2", kind: str = "Notification"
) -> dict[str, Any]:
    """An SNS HTTP message signed as the AWS documentation describes."""
    message: dict[str, Any] = {
        "Type": kind,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": json.dumps(body),
        "Timestamp": "2012-05-02T00:54:06.655Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
    }
    if kind == "Notification":
        message["Subject"] = "Amazon SES Email Event Notification"
        fields = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        message["Token"] = (
            "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a7"
        )
        message["SubscribeURL"] = (
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
            + TOPIC
            + "&Token=2336412f37fb"
        )
        fields = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{f}\n{message[f]}\n" for f in fields)
    digest = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = key.sign(text.encode(), padding.PKCS1v15(), digest)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def test_ses_bounce_suppresses_and_finds_the_delivery_by_message_id(
    client: TestClient, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    (jane,) = send_digest(
        ["jane@example.com"], message_ids={"jane@example.com": "<custom-message-ID>"}
    )
    response = client.post(
        "/webhooks/bounces/ses",
        content=json.dumps(sns_message(sns_key[0], payload("ses-bounce.json"))),
    )
    assert response.status_code == 200, response.text
    assert response.json()["actions"] == {"suppressed": 1}
    assert subscriber_state("jane@example.com")[0] == "bounced"
    assert is_suppressed("jane@example.com")
    with session_scope() as session:
        event = session.scalar(select(BounceEvent))
        assert event is not None
        assert (event.delivery_id, event.kind, event.status_code, event.source) == (
            jane.delivery_id,
            "hard",
            "5.1.1",
            "webhook:ses",
        )
    assert client.fetched == [CERT_URL]  # type: ignore[attr-defined]


def test_ses_complaint_signed_with_version_1_unsubscribes(
    client: TestClient, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    send_digest(["richard@example.com"])
    message = sns_message(sns_key[0], payload("ses-complaint.json"), version="1")
    assert client.post("/webhooks/bounces/ses", content=json.dumps(message)).status_code == 200
    status, _, subs = subscriber_state("richard@example.com")
    assert (status, subs) == ("complained", {"news": "unsubscribed"})


def test_ses_tampered_message_is_refused_and_counted(
    client: TestClient, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    send_digest(["jane@example.com"])
    message = sns_message(sns_key[0], payload("ses-bounce.json"))
    message["Message"] = message["Message"].replace("jane@", "mary@")
    response = client.post("/webhooks/bounces/ses", content=json.dumps(message))
    assert response.status_code == 401
    assert _events() == [] and subscriber_state("jane@example.com")[0] == "active"
    assert ("webhook:ses", "bad-signature", 1) in _rejections(client)


def test_ses_certificate_from_anywhere_but_amazon_sns_is_never_fetched(
    client: TestClient, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    for url in (
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/cert.pem",
        "https://user@sns.us-east-1.amazonaws.com/cert.pem",
    ):
        message = sns_message(sns_key[0], payload("ses-bounce.json"))
        message["SigningCertURL"] = url
        assert client.post("/webhooks/bounces/ses", content=json.dumps(message)).status_code == 401
    assert client.fetched == []  # type: ignore[attr-defined]


def test_ses_from_another_topic_is_forbidden(
    client: TestClient, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    send_digest(["jane@example.com"])
    message = sns_message(sns_key[0], payload("ses-bounce.json"))
    message["TopicArn"] = "arn:aws:sns:us-east-1:999999999999:someone-elses"
    key = sns_key[0]
    fields = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    text = "".join(f"{f}\n{message[f]}\n" for f in fields).encode()
    message["Signature"] = base64.b64encode(
        key.sign(text, padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    assert client.post("/webhooks/bounces/ses", content=json.dumps(message)).status_code == 403
    assert subscriber_state("jane@example.com")[0] == "active"


def test_ses_subscription_confirmation_is_logged_not_fetched(
    client: TestClient, sns_key: tuple[rsa.RSAPrivateKey, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    message = sns_message(sns_key[0], {"note": "confirm"}, kind="SubscriptionConfirmation")
    with caplog.at_level(logging.WARNING, logger="newsletter.bounces.webhooks.ses"):
        response = client.post("/webhooks/bounces/ses", content=json.dumps(message))
    assert response.status_code == 200
    assert message["SubscribeURL"] in caplog.text
    assert client.fetched == [CERT_URL]  # type: ignore[attr-defined]


# Postmark ------------------------------------------------------------------------------


def test_postmark_hard_bounce_with_basic_auth(client: TestClient) -> None:
    send_digest(["john@example.com"])
    body = json.dumps(payload("postmark-bounce.json"))
    response = client.post(
        "/webhooks/bounces/postmark", content=body, auth=("postmark", WEBHOOK_SECRET)
    )
    assert response.status_code == 200, response.text
    assert subscriber_state("john@example.com")[0] == "bounced"


def test_postmark_spam_complaint_with_the_secret_in_the_url(client: TestClient) -> None:
    send_digest(["mary@example.com"])
    body = json.dumps(payload("postmark-spam-complaint.json"))
    response = client.post(f"/webhooks/bounces/postmark?secret={WEBHOOK_SECRET}", content=body)
    assert response.status_code == 200
    assert subscriber_state("mary@example.com")[0] == "complained"


def test_postmark_wrong_credentials_are_refused(client: TestClient) -> None:
    send_digest(["john@example.com"])
    body = json.dumps(payload("postmark-bounce.json"))
    assert client.post("/webhooks/bounces/postmark", content=body).status_code == 401
    wrong = client.post("/webhooks/bounces/postmark", content=body, auth=("postmark", "guess"))
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert client.post("/webhooks/bounces/postmark?secret=guess", content=body).status_code == 401
    assert subscriber_state("john@example.com")[0] == "active"
    assert ("webhook:postmark", "bad-signature", 3) in _rejections(client)


def test_malformed_payload_with_good_credentials_is_a_400(client: TestClient) -> None:
    for body in (b"{not json", b"[]", json.dumps({"RecordType": "Bounce"}).encode()):
        response = client.post(f"/webhooks/bounces/postmark?secret={WEBHOOK_SECRET}", content=body)
        assert response.status_code == 400, body
    assert _events() == []


# SendGrid ------------------------------------------------------------------------------


def sendgrid_headers(key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    timestamp = "1600112502"
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def test_sendgrid_events_each_have_their_effect(
    client: TestClient, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    events = payload("sendgrid-events.json")
    send_digest([e["email"] for e in events])
    body = json.dumps(events).encode()
    response = client.post(
        "/webhooks/bounces/sendgrid", content=body, headers=sendgrid_headers(sendgrid_key, body)
    )
    assert response.status_code == 200, response.text
    states = {e["email"].split("@")[0]: subscriber_state(e["email"])[0] for e in events}
    assert states == {
        "processed": "active",
        "deferred": "active",
        "delivered": "active",
        "bounce": "bounced",
        "blocked": "active",  # a block is about our sending: counted per domain
        "dropped": "bounced",
        "spamreport": "complained",
    }
    assert sorted(k for _, k, _ in _events()) == ["complaint", "hard", "hard", "policy"]


def test_sendgrid_bad_signature_is_refused(
    client: TestClient, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    events = payload("sendgrid-events.json")
    send_digest([e["email"] for e in events])
    body = json.dumps(events).encode()
    headers = sendgrid_headers(sendgrid_key, body)
    tampered = body.replace(b"bounce@", b"delivered@")
    assert (
        client.post("/webhooks/bounces/sendgrid", content=tampered, headers=headers).status_code
        == 401
    )
    other = ec.generate_private_key(ec.SECP256R1())
    assert (
        client.post(
            "/webhooks/bounces/sendgrid", content=body, headers=sendgrid_headers(other, body)
        ).status_code
        == 401
    )
    assert client.post("/webhooks/bounces/sendgrid", content=body).status_code == 401
    assert _events() == []


# Mailgun -------------------------------------------------------------------------------


def mailgun_signed(name: str, key: str = MAILGUN_KEY) -> bytes:
    body = copy.deepcopy(payload(name))
    sig = body["signature"]
    sig["signature"] = hmac.new(
        key.encode(), (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256
    ).hexdigest()
    return json.dumps(body).encode()


def test_mailgun_failures_and_complaints(client: TestClient) -> None:
    send_digest(["alice@example.com", "bob@example.com", "carol@example.com"])
    for name in (
        "mailgun-permanent-failure.json",
        "mailgun-temporary-failure.json",
        "mailgun-complained.json",
    ):
        response = client.post("/webhooks/bounces/mailgun", content=mailgun_signed(name))
        assert response.status_code == 200, (name, response.text)
    assert subscriber_state("alice@example.com")[0] == "bounced"
    assert subscriber_state("bob@example.com")[:2] == ("active", 1)
    assert subscriber_state("carol@example.com")[0] == "complained"
    # Mailgun retries a call it thinks failed: the same event changes nothing.
    again = client.post(
        "/webhooks/bounces/mailgun", content=mailgun_signed("mailgun-temporary-failure.json")
    )
    assert again.json()["actions"] == {"duplicate": 1}
    assert subscriber_state("bob@example.com")[:2] == ("active", 1)


def test_mailgun_signature_with_the_wrong_key_is_refused(client: TestClient) -> None:
    send_digest(["alice@example.com"])
    body = mailgun_signed("mailgun-permanent-failure.json", key="not-the-key")
    assert client.post("/webhooks/bounces/mailgun", content=body).status_code == 401
    documented = (PAYLOADS / "mailgun-permanent-failure.json").read_bytes()
    assert client.post("/webhooks/bounces/mailgun", content=documented).status_code == 401
    assert subscriber_state("alice@example.com")[0] == "active"


# Common --------------------------------------------------------------------------------


def test_unknown_provider_unconfigured_provider_and_huge_body(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.post("/webhooks/bounces/sparkpost", content=b"{}").status_code == 404
    huge = b"[" + b" " * 6_000_000 + b"]"
    assert (
        client.post(f"/webhooks/bounces/postmark?secret={WEBHOOK_SECRET}", content=huge).status_code
        == 413
    )
    monkeypatch.delenv("NEWSLETTER_MAILGUN_SIGNING_KEY")
    reset_caches()
    response = client.post(
        "/webhooks/bounces/mailgun", content=mailgun_signed("mailgun-complained.json")
    )
    assert response.status_code == 404
    assert "NEWSLETTER_MAILGUN_SIGNING_KEY" in response.json()["detail"]
