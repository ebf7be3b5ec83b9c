"""Command groups of the `newsletter` CLI, one module per capability."""
