"""Celery app, tasks and beat schedule: thin wrappers over newsletter/."""
