"""Turning raw Redis replies into Python objects.

Replies may arrive as ``bytes`` or ``str`` depending on the client's
``decode_responses``; everything here accepts both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from redismem.models import ChangeEvent, Op, Record
from redismem.tokens import LogPosition


def text(reply: Any) -> str:
    """A reply item as ``str``."""
    if isinstance(reply, bytes):
        return reply.decode()
    return str(reply)


def record(namespace: str, key: str, stored: Any) -> Record:
    """Build a Record from the stored record JSON."""
    fields = json.loads(stored)
    return Record(
        namespace=namespace,
        key=key,
        value=fields["value"],
        version=fields["version"],
        created=fields["created"],
        updated=fields["updated"],
    )


def stream_event(namespace: str, epoch: str, entry: Sequence[Any]) -> ChangeEvent:
    """Build a ChangeEvent from one XRANGE/XREAD entry: ``[id, [f, v, ...]]``."""
    stream_id = text(entry[0])
    fields = entry_fields(entry)

    seq = int(fields["seq"])
    raw_value = fields.get("value")
    return ChangeEvent(
        namespace=namespace,
        key=text(fields["key"]),
        op=cast(Op, text(fields["op"])),
        version=int(fields["version"]),
        seq=seq,
        ts=event_time(stream_id),
        value=None if raw_value is None else json.loads(raw_value),
        epoch=epoch,
        id=stream_id,
        token=LogPosition(epoch, seq, stream_id).encode(),
    )


def event_time(stream_id: str) -> int:
    """An event's Redis time in ms: the ms part of its stream ID.

    The write scripts let XADD pick the ID from Redis time, so the log keeps
    no separate time field (entries written before that carry an equal
    ``ts``).
    """
    return int(stream_id.partition("-")[0])


def published_event(message: Any) -> ChangeEvent:
    """Build a ChangeEvent from the JSON a write script published."""
    fields = json.loads(message)
    epoch = fields["epoch"]
    return ChangeEvent(
        namespace=fields["ns"],
        key=fields["key"],
        op=fields["op"],
        version=fields["version"],
        seq=fields["seq"],
        ts=fields["ts"],
        value=fields["value"],
        epoch=epoch,
        id=fields["id"],
        token=LogPosition(epoch, fields["seq"], fields["id"]).encode(),
    )


def entry_fields(entry: Sequence[Any]) -> dict[str, Any]:
    """The fields of one XRANGE entry ``[id, [f, v, ...]]`` as a dict."""
    flat = entry[1]
    if isinstance(flat, dict):
        return {text(k): v for k, v in flat.items()}
    return {text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def json_value(raw: Any) -> Any:
    """Decode a JSON value stored or published by a script."""
    return json.loads(raw)
