"""Resume and page tokens: opaque to callers, exact when they come back.

A change-log token is ``<epoch>.<seq>.<stream id>``: the epoch tells whether
it still belongs to the namespace's log, the stream ID is where reading
resumes, and the seq lets a reader check that nothing was skipped.

A subscription's token is a map of such positions, one per namespace.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from redismem.errors import InvalidNamespace, InvalidToken
from redismem.validation import check_namespace

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


# A subscription's resume token covers many namespaces: base64url (unpadded)
# of compact JSON {"v": 1, "p": {namespace: change-log token}}. Namespaces
# the subscription has not placed yet are left out; on resume they are read
# from the start of their log.
_FEED_TOKEN_VERSION = 1


def encode_feed_token(positions: Mapping[str, LogPosition]) -> str:
    """Return the opaque resume token for a subscription's positions."""
    payload = {
        "v": _FEED_TOKEN_VERSION,
        "p": {name: positions[name].encode() for name in sorted(positions)},
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_feed_token(token: object) -> dict[str, LogPosition]:
    """Decode a subscription resume token, raising InvalidToken if malformed."""
    if not isinstance(token, str) or not token:
        raise InvalidToken(token, "must be a non-empty string")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (ValueError, binascii.Error):
        raise InvalidToken(token, "not a subscription resume token") from None

    if (
        not isinstance(payload, dict)
        or payload.get("v") != _FEED_TOKEN_VERSION
        or not isinstance(payload.get("p"), dict)
    ):
        raise InvalidToken(token, "not a subscription resume token")
    positions = {}
    for namespace, position in payload["p"].items():
        try:
            check_namespace(namespace)
        except InvalidNamespace:
            raise InvalidToken(
                token, f"names an invalid namespace {namespace!r}"
            ) from None
        positions[namespace] = decode_log_token(position)
    return positions
