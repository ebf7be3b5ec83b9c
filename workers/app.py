"""The Celery app: Redis (or RabbitMQ) in production, a file-system broker when embedded.

The file-system transport is a real cross-process broker that needs no server: web,
worker and beat exchange messages through files in the data dir.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from newsletter.config import Settings, get_settings
from workers import fsbroker

fsbroker.install()  # filesystem:// messages written whole before a worker can read them
# redis:// with one client per channel (workers/redisbroker.py), imported only when used.
TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = "workers.redisbroker:Transport"


def make_celery(settings: Settings) -> Celery:
    app = Celery("newsletter", broker=settings.broker, include=["workers.tasks"])
    conf: dict[str, object] = {
        # A task is acknowledged after it ran, so a killed worker's task is redelivered.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "result_backend": None,
        "broker_connection_retry_on_startup": True,
        "timezone": "UTC",
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        # Beat only emits interval ticks; what is due and what was sent lives in the
        # database (one digest per list and period), so beat keeps no state file and
        # two beats, even on one host, never fight over one.
        "beat_scheduler": "celery.beat:Scheduler",
        "beat_schedule": {
            "purge-unconfirmed": {
                "task": "workers.tasks.purge_unconfirmed",
                "schedule": timedelta(hours=1),
            },
            "send-tick": {
                "task": "workers.tasks.send_tick",
                "schedule": timedelta(seconds=settings.beat_tick_seconds),
            },
            # Rows of a dead batch (its claim's heartbeat stopped): one indexed query.
            "recover-claims": {
                "task": "workers.tasks.recover_claims",
                "schedule": timedelta(seconds=settings.send_claim_check_seconds),
                "options": {"expires": settings.send_claim_check_seconds},
            },
            "poll-bounce-mailbox": {  # a no-op unless NEWSLETTER_BOUNCE_MAILBOX_URL is set
                "task": "workers.tasks.poll_bounce_mailbox",
                "schedule": timedelta(minutes=1),
                "options": {"expires": 55},
            },
            # Registered feeds (newsletter/sources/): conditional GET, new entries only.
            # A tick a busy worker could not take in time is dropped, not piled up.
            "poll-feeds": {
                "task": "workers.tasks.poll_feeds",
                "schedule": timedelta(minutes=settings.feed_poll_minutes),
                "options": {"expires": settings.feed_poll_minutes * 60},
            },
            # Outgoing webhooks (newsletter/webhooks/): the due rows of the outbox.
            "deliver-webhooks": {
                "task": "workers.tasks.deliver_webhooks",
                "schedule": timedelta(seconds=settings.webhook_sweep_seconds),
                "options": {"expires": settings.webhook_sweep_seconds},
            },
            # Engagement (newsletter/engagement/sunset.py): "still want this?" and its end.
            "sunset-sweep": {
                "task": "workers.tasks.sunset_sweep",
                "schedule": timedelta(hours=1),
                "options": {"expires": 3000},
            },
            # The console's counts (newsletter/stats/): pages read them, never count.
            "refresh-stats": {
                "task": "workers.tasks.refresh_stats",
                "schedule": timedelta(seconds=settings.stats_refresh_seconds),
                "options": {"expires": settings.stats_refresh_seconds},
            },
        },
    }
    if settings.embedded:
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            # Broadcast (pidbox) exchanges; kombu's default is ./control in the cwd.
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    elif settings.redis_url:
        # Redelivery of an unacknowledged task after a crash: long enough for a batch.
        conf["broker_transport_options"] = {"visibility_timeout": 3600}
    app.conf.update(conf)
    return app


app = make_celery(get_settings())
