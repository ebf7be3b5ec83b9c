"""The sending engine: send job, batches, ledger journal, politeness, control, schedules.

Flow: `job.start_send` writes one delivery row per recipient with one INSERT … SELECT
and returns id ranges; the caller enqueues one Celery batch per range; `batch.run_batch`
claims its rows, sends them over a kept SMTP connection, journals every accept at once
(Redis set or an append-only file) and folds the outcomes into the ledger in one
transaction per batch. Nothing here imports Celery: workers/tasks.py is the glue.
"""
