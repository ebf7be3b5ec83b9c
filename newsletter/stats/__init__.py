"""Maintained aggregates for the console: counts computed by a refresh, read from snapshots."""
