"""sandbox-executor: the in-sandbox agent (stdlib only)."""
