"""`pruneboard` command line: thin wrappers over the engine and, later, the HTTP API."""
