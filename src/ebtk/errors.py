"""One exception type for user mistakes: the CLI turns it into a one-line `error:` and exit code 2."""


class EbtkError(Exception):
    """A user-facing error (bad input, bad config, diverged training). Message is one line, with a hint."""
