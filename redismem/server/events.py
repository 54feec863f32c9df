"""An outgoing change event, encoded once for every client that gets it."""

from __future__ import annotations

import orjson

from redismem.models import ChangeEvent
from redismem.server import protocol
from redismem.tokens import LogPosition


class OutgoingEvent:
    """One change event and its encodings: JSON payload, WebSocket frame, SSE.

    Built once per published message (or history entry); every connection
    that receives it is handed the same bytes.
    """

    __slots__ = (
        "_key",
        "_sse",
        "epoch",
        "namespace",
        "payload",
        "seq",
        "stream_id",
        "token",
        "ts",
        "ws_frame",
    )

    _key: str

    def __init__(
        self,
        namespace: str,
        epoch: str,
        seq: int,
        stream_id: str,
        ts: int,
        payload: bytes,
    ) -> None:
        self.namespace = namespace
        self.epoch = epoch
        self.seq = seq
        self.stream_id = stream_id
        self.ts = ts
        self.token = f"{epoch}.{seq}.{stream_id}"
        self.payload = payload
        self.ws_frame = protocol.websocket_text_frame(payload)
        self._sse: bytes | None = None

    @classmethod
    def from_published(cls, raw: bytes) -> OutgoingEvent:
        """Build from the JSON a write script published."""
        fields = orjson.loads(raw)
        epoch, seq, stream_id = fields["epoch"], fields["seq"], fields["id"]
        token = f"{epoch}.{seq}.{stream_id}"
        return cls(
            fields["ns"],
            epoch,
            seq,
            stream_id,
            fields["ts"],
            protocol.event_payload(raw, token),
        )

    @classmethod
    def from_history(cls, event: ChangeEvent) -> OutgoingEvent:
        """Build from an event read back from the change log."""
        return cls(
            event.namespace,
            event.epoch,
            event.seq,
            event.id,
            event.ts,
            protocol.history_payload(event),
        )

    @property
    def position(self) -> LogPosition:
        """The log position just after this event."""
        return LogPosition(self.epoch, self.seq, self.stream_id)

    @property
    def key(self) -> str:
        """The record's key, parsed on first use (only coalescing needs it)."""
        key: str | None = getattr(self, "_key", None)
        if key is None:
            key = self._key = orjson.loads(self.payload)["key"]
        return key

    def coalesced(self, superseded: int) -> OutgoingEvent:
        """This event, saying it replaced ``superseded`` older ones of its key."""
        return OutgoingEvent(
            self.namespace,
            self.epoch,
            self.seq,
            self.stream_id,
            self.ts,
            protocol.coalesced_payload(self.payload, superseded),
        )

    @property
    def sse(self) -> bytes:
        """The SSE message, built on first use (most events go to WebSocket)."""
        if self._sse is None:
            self._sse = protocol.sse_message(
                self.payload, event_id=protocol.sse_event_id(self.namespace, self.token)
            )
        return self._sse


class EventBatch:
    """Consecutive events bound for the same connections, joined once.

    Under load the pub/sub link yields several events per read; writing
    them to each socket as one buffer costs one send instead of one each.
    """

    __slots__ = ("_sse", "_ws", "events")

    def __init__(self, events: list[OutgoingEvent]) -> None:
        self.events = events
        self._ws: bytes | None = None
        self._sse: bytes | None = None

    @property
    def ws_frames(self) -> bytes:
        """The events' WebSocket frames, back to back."""
        if self._ws is None:
            self._ws = b"".join(event.ws_frame for event in self.events)
        return self._ws

    @property
    def sse(self) -> bytes:
        """The events' SSE messages, back to back."""
        if self._sse is None:
            self._sse = b"".join(event.sse for event in self.events)
        return self._sse
