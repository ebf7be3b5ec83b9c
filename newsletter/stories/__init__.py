"""Stories: one module per input format, feeds, and the story store."""
