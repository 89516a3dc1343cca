"""The one error type the CLI prints as a message instead of a traceback."""


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""
