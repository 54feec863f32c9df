"""Resume and page tokens: opaque to callers, exact when they come back.

A change-log token is ``<epoch>.<seq>.<stream id>``: the epoch tells whether
it still belongs to the namespace's log, the stream ID is where reading
resumes, and the seq lets a reader check that nothing was skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redismem.errors import InvalidToken

_LOG_TOKEN_RE = re.compile(r"(\d+)\.(\d+)\.(\d+-\d+)")


@dataclass(frozen=True)
class LogPosition:
    """A decoded change-log token."""

    epoch: str
    seq: int
    stream_id: str

    def encode(self) -> str:
        """Return the token string for this position."""
        return f"{self.epoch}.{self.seq}.{self.stream_id}"


def decode_log_token(token: object) -> LogPosition:
    """Decode a change-log token, raising InvalidToken if it is malformed."""
    if not isinstance(token, str):
        raise InvalidToken(token, "must be a string")
    match = _LOG_TOKEN_RE.fullmatch(token)
    if match is None:
        raise InvalidToken(token, "not a change-log token")
    epoch, seq, stream_id = match.groups()
    return LogPosition(epoch, int(seq), stream_id)
