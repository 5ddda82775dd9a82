"""One exception type for user mistakes: the CLI turns it into a one-line `error:` and exit code 2."""


class EbtkError(Exception):
    """A user-facing error: bad input, a bad config, diverged training.

    The message is one line, with a hint where one helps. The CLI prints it as ``error: <message>`` and
    exits with code 2; library callers catch it like any exception.
    """
