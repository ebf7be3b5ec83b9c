"""Digests: choose stories, render and inline once, reader fields, the archive."""
