"""The sending engine: send job, batches, ledger journal, politeness, control, schedules.

Flow: `job.start_send` writes the first chunk of delivery rows with one INSERT … SELECT
and returns id ranges; the caller enqueues one Celery batch per range, and for a longer
list a task that writes the rest (`job.complete_ledger`); `batch.run_batch`
claims its rows, sends them over a kept SMTP connection, journals every accept at once
(Redis set or an append-only file) and folds the outcomes into the ledger in one
transaction per batch. Every change of a send's status (start, pause, resume, cancel,
finish, retry) goes through `lifecycle`, one table of the allowed transitions. Nothing
here imports Celery: workers/tasks.py is the glue.
"""
