"""Feed sources: RSS and Atom feeds registered per list, polled by beat with
conditional GET; their new entries become the list's stories, never one twice."""
