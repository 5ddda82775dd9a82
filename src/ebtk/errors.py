"""One exception type for user mistakes: the CLI turns it into a one-line `error:` and exit code 2."""

from __future__ import annotations

import re


class EbtkError(Exception):
    """A user-facing error: bad input, bad config, diverged training.

    ebtk raises it for mistakes the user can fix, never for its own bugs. The message is one line, with a
    hint where one helps; the CLI prints it as ``error: <message>`` (no traceback) and exits with code 2.
    """


def one_line(reason: BaseException | str, limit: int = 400) -> str:
    """`reason` (an exception or a text) as one line for an `error:` message, never cut mid-word.

    Lines are joined (torch puts the detail of "Error(s) in loading state_dict" on the next line) and
    whitespace collapsed. Past `limit` characters the *middle* is replaced by " … ", at word boundaries,
    so both the kind of failure (its start) and the detail (often at its end) survive.

    Args:
        reason: an exception or a text.
        limit: the length in characters past which the middle is cut out.

    Returns:
        The one-line text; the exception's type name when it has no message (an empty text stays empty).
    """
    text = str(reason)
    text = re.sub(r"\s+", " ", text).strip() or (type(reason).__name__ if isinstance(reason, BaseException) else "")
    if len(text) <= limit:
        return text
    keep = max(limit - 3, 2) // 2
    head, tail = text[:keep], text[len(text) - keep:]
    if " " in head:  # end the head and start the tail at word boundaries
        head = head[: head.rfind(" ")]
    if " " in tail:
        tail = tail[tail.find(" ") + 1:]
    return f"{head} … {tail}"
