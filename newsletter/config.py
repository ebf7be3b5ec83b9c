"""Settings from NEWSLETTER_* environment variables and .env, in one place.

Unset settings take the embedded defaults (SQLite, a file-system Celery broker,
the built-in SMTP catcher), so a fresh machine runs with no servers. In
production mode (NEWSLETTER_ENV=production) the settings that must never be
guessed are required, and any malformed value stops start-up with one line.
"""

from __future__ import annotations

import re
import secrets
from email.headerregistry import Address
from email.utils import parseaddr
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
BROKER_SCHEMES = ("redis", "rediss", "amqp", "pyamqp", "filesystem", "sqla+", "memory")
# The database drivers the service installs (postgresql:// means psycopg here).
DATABASE_DRIVERS = ("postgresql+psycopg", "sqlite", "sqlite+pysqlite")
REQUIRED_IN_PRODUCTION = (
    "database_url",
    "broker_url",
    "smtp_url",
    "base_url",
    "secret_key",
    "admin_token",
    "from_",
)


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line for the operator."""


class SmtpConfig:
    """SMTP_URL taken apart: smtp://, smtp+starttls://, smtps:// with user:password."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in SMTP_SCHEMES:
            raise ValueError(
                f"scheme must be one of {', '.join(sorted(SMTP_SCHEMES))}, got {parts.scheme!r}"
            )
        if not parts.hostname:
            raise ValueError("has no host")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError("has a bad port") from exc
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port or SMTP_SCHEMES[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = parts.scheme == "smtp+starttls"
        self.ssl = parts.scheme == "smtps"

    def __repr__(self) -> str:  # never show the password
        return f"SmtpConfig({self.scheme}://{self.host}:{self.port})"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str | None = None
    broker_url: str | None = None
    smtp_url: str = "smtp://127.0.0.1:1025"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None
    admin_token: str | None = None
    from_: str = Field("The Newsroom <newsletter@localhost>", alias="NEWSLETTER_FROM")
    bounce_domain: str | None = None
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_file: Path | None = None
    send_rate: float = 0.0
    # Sending engine (newsletter/sending/): batches, retries, leases, politeness.
    dkim_ed25519_key_file: Path | None = None
    dkim_ed25519_selector: str | None = None
    send_batch_size: int = Field(1000, ge=1, le=10000)
    # The most SMTP connections the deployment keeps open to the relay (its workers split it).
    send_connections: int = Field(50, ge=1)
    # start_send writes this many recipients at once, the rest in a task (job.py).
    send_first_chunk: int = Field(2000, ge=1)
    send_max_attempts: int = Field(5, ge=1)
    send_retry_base_seconds: float = Field(60.0, gt=0)
    # A claim lives while its batch's heartbeat renews it every SEND_HEARTBEAT_SECONDS;
    # unrenewed for SEND_LEASE_SECONDS it is a dead worker's, and the claim check (beat,
    # every SEND_CLAIM_CHECK_SECONDS) hands its rows to a live worker (batch.py).
    send_lease_seconds: float = Field(15.0, gt=0)
    send_heartbeat_seconds: float = Field(5.0, gt=0)
    send_claim_check_seconds: float = Field(10.0, gt=0)
    # A batch task that hit a database or broker error runs again after at most this.
    send_retry_task_max_seconds: float = Field(5.0, gt=0)
    send_stall_seconds: float = Field(120.0, gt=0)
    send_probe_seconds: float = Field(30.0, gt=0)
    send_domain_rate: float = Field(0.0, ge=0)
    send_domain_backoff_seconds: float = Field(60.0, gt=0)
    send_bounce_threshold: float = Field(0.05, gt=0, le=1)
    send_bounce_min_deliveries: int = Field(500, ge=1)
    schedule_window_minutes: int = Field(60, ge=1)
    beat_tick_seconds: float = Field(60.0, gt=0)  # how often beat starts due digests
    confirm_ttl_days: int = 7
    confirm_resend_minutes: int = 10
    check_deliverability: bool = False
    subscribe_limit_ip: int = 20
    subscribe_limit_ip_window: int = 60
    subscribe_limit_address: int = 5
    subscribe_limit_address_window: int = 3600
    postal_address: str = "The Newsroom, 1 Example Street, Springfield"
    consent_version: str = "2026-11"
    # Bounces (newsletter/bounces/): soft-bounce policy, inbound limits, mailbox, webhooks.
    soft_bounce_limit: int = Field(3, ge=1)
    soft_bounce_days: int = Field(14, ge=1)
    bounce_max_bytes: int = Field(10_000_000, ge=10_000)
    # imaps://user:pass@host/INBOX or pop3s://...; secrets stay out of reprs and logs.
    bounce_mailbox_url: str | None = Field(None, repr=False)
    bounce_mailbox_ca_file: Path | None = None  # extra CA for a private mailbox server
    webhook_secret: str | None = Field(None, repr=False)  # Postmark basic auth / ?secret=
    ses_topic_arn: str | None = None  # comma-separated SNS topics allowed to post
    ses_confirm_subscriptions: bool = False
    mailgun_signing_key: str | None = Field(None, repr=False)
    sendgrid_public_key: str | None = None  # base64 DER (ECDSA P-256) from SendGrid
    # Rich digests (newsletter/media/, newsletter/preflight/, newsletter/sources/).
    dns_server: str | None = None  # host[:port] preflight asks instead of the system's
    media_dir: Path | None = None  # processed images; default <data dir>/media
    media_url: str | None = None  # their public base URL; default BASE_URL + /media/
    media_s3_url: str | None = Field(None, repr=False)  # s3://key:secret@host/bucket
    feed_poll_minutes: float = Field(15.0, gt=0)  # beat polls registered feeds this often
    # The operator console (newsletter/accounts/, newsletter/web/console/).
    send_approval: bool = False  # a send waits for a second sender or admin to approve it
    console_session_hours: float = Field(12.0, gt=0, le=24 * 30)
    login_limit_ip: int = Field(20, ge=1)  # login attempts per IP per 5 minutes
    login_limit_account: int = Field(5, ge=1)  # failed logins per account per 15 minutes
    stats_refresh_seconds: float = Field(60.0, gt=0)  # beat refreshes the console's counts
    # The audience (newsletter/segments/, subscriptions/preferences, webhooks, engagement).
    # Languages of pages and system mails, the first the default (newsletter/i18n/).
    languages: str = "en,uk"
    # Fetch pages, feeds and images from private networks (newsletter/netnames.py);
    # unset: yes in development, no in production.
    fetch_private_networks: bool | None = None
    # Engagement (newsletter/engagement/): days a reader asked "still want this?" by a
    # list's sunset has to answer (a click or "Keep me subscribed") before they are
    # unsubscribed with the reason "sunset".
    sunset_grace_days: int = Field(14, ge=1, le=365)
    # Outgoing webhooks (newsletter/webhooks/): how often beat posts the due deliveries.
    webhook_sweep_seconds: float = Field(15.0, gt=0)

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: str) -> str:
        SmtpConfig(value)
        return value

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(BROKER_SCHEMES):
            raise ValueError("must be a redis://, amqp:// or filesystem:// URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("is not a database URL") from exc
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
            value = str(url.set(drivername="postgresql+psycopg").render_as_string(False))
        elif url.drivername not in DATABASE_DRIVERS:
            # Another driver (psycopg2, asyncpg, ...) is not installed with the service:
            # every command would stop on its import, and `newsletter web` at start.
            raise ValueError(
                f"the {url.get_driver_name()} driver is not supported: use postgresql:// "
                "(psycopg) or sqlite://"
            )
        return value

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str) -> str:
        name, addr = parseaddr(value)
        if "@" not in addr or any(c in value for c in "\r\n"):
            raise ValueError("must be a display name and address, e.g. 'News <news@example.com>'")
        return value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: str) -> str:
        codes = [c.strip().lower() for c in value.split(",") if c.strip()]
        if not codes or any(not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", c) for c in codes):
            raise ValueError("must be language codes separated by commas, e.g. 'en,uk'")
        return ",".join(dict.fromkeys(codes))

    @property
    def language_codes(self) -> tuple[str, ...]:
        """LANGUAGES as a tuple, the default first."""
        return tuple(self.languages.split(","))

    @field_validator("send_rate")
    @classmethod
    def _rate(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must be 0 (no cap) or a positive number of messages per second")
        return value

    @model_validator(mode="after")
    def _production(self) -> Settings:
        if self.env == "production":
            missing = [n for n in REQUIRED_IN_PRODUCTION if n not in self.model_fields_set]
            if missing:
                names = ", ".join("NEWSLETTER_" + n.rstrip("_").upper() for n in missing)
                raise ValueError(f"production mode needs {names}")
        return self

    # Derived values -----------------------------------------------------------

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'newsletter.db'}"

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file, or None for PostgreSQL and in-memory SQLite."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database).resolve()

    def missing_database(self) -> Path | None:
        """The SQLite file that should hold the data but does not exist (None: no such gap).

        A PostgreSQL database is never checked this way: reaching it is the connection's job.
        """
        path = self.sqlite_file
        return path if path is not None and not path.exists() else None

    @property
    def data_dir_given(self) -> bool:
        """Whether the operator said where the data is (NEWSLETTER_DATA_DIR, .env, --data-dir)."""
        return bool({"data_dir", "database_url"} & self.model_fields_set)

    def ensure_secrets(self) -> None:
        """Create the persisted embedded-default secrets now (they are otherwise made lazily)."""
        _ = self.secret, self.admin

    @property
    def broker(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def may_fetch_private(self) -> bool:
        if self.fetch_private_networks is not None:
            return self.fetch_private_networks
        return self.env != "production"

    @property
    def media_folder(self) -> Path:
        return (self.media_dir or self.data_dir / "media").resolve()

    @property
    def media_base_url(self) -> str:
        return (self.media_url or f"{self.base_url.rstrip('/')}/media").rstrip("/") + "/"

    @property
    def broker_folder(self) -> Path:
        return self.data_dir.resolve() / "broker"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir.resolve() / "outbox"

    @property
    def redis_url(self) -> str | None:
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def smtp(self) -> SmtpConfig:
        return SmtpConfig(self.smtp_url)

    @property
    def sender(self) -> Address:
        return _sender(self.from_)

    @property
    def sender_domain(self) -> str:
        return self.sender.domain

    @property
    def bounces_domain(self) -> str:
        return self.bounce_domain or self.sender_domain

    @property
    def secret(self) -> str:
        return self.secret_key or _persisted_secret(self.data_dir, "secret_key")

    @property
    def admin(self) -> str:
        return self.admin_token or _persisted_secret(self.data_dir, "admin_token")


@lru_cache(maxsize=16)  # parsed once: every system mail asks for it
def _sender(from_: str) -> Address:
    name, addr = parseaddr(from_)
    user, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=user, domain=domain)


@cache  # read once per process: a sign-up asked for it several times, a file read each
def _persisted_secret(data_dir: Path, name: str) -> str:
    """An embedded-default secret, made once and kept in the data dir so links survive
    restarts."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path.read_text().strip()


def load_settings() -> Settings:
    """Read and check the settings; a problem becomes one ConfigError line."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        field = "NEWSLETTER_" + loc.rstrip("_").upper() if loc else "settings"
        if field == "NEWSLETTER_FROM_":
            field = "NEWSLETTER_FROM"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{field}: {msg}" if loc else msg) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
