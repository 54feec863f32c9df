"""Checks on namespaces, keys and values, run before anything reaches Redis.

Namespaces and keys use a character set that needs no escaping in JSON, in
Redis glob patterns or in cluster hash tags, so scripts can build event JSON by
concatenation and ``{<namespace>}`` is always a well-formed hash tag.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from redismem.errors import InvalidKey, InvalidNamespace, InvalidValue

MAX_NAMESPACE_LENGTH = 128
MAX_KEY_LENGTH = 512
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024

#: Letters, digits and ``_ - . : / @ + = ~ %``; must start with a letter or digit.
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-.:/@+=~%]*")
#: As for namespaces, and a key may also start with ``_``.
_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-.:/@+=~%]*")

ALLOWED_CHARACTERS = "letters, digits and _ - . : / @ + = ~ %"


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is a valid namespace, else raise InvalidNamespace."""
    if not isinstance(namespace, str):
        raise InvalidNamespace(namespace, "must be a string")
    if not namespace:
        raise InvalidNamespace(namespace, "must not be empty")
    if len(namespace) > MAX_NAMESPACE_LENGTH:
        raise InvalidNamespace(
            namespace, f"longer than {MAX_NAMESPACE_LENGTH} characters"
        )
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise InvalidNamespace(
            namespace,
            f"use only {ALLOWED_CHARACTERS}, starting with a letter or digit",
        )
    return namespace


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid record key, else raise InvalidKey."""
    if not isinstance(key, str):
        raise InvalidKey(key, "must be a string")
    if not key:
        raise InvalidKey(key, "must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(key, f"longer than {MAX_KEY_LENGTH} characters")
    if not _KEY_RE.fullmatch(key):
        raise InvalidKey(
            key, f"use only {ALLOWED_CHARACTERS}, not starting with - . : / @ + = ~ %"
        )
    return key


#: Made once: json.dumps() with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _c_encoder() -> Callable[[Any], str]:
    """The C encoder that ``_ENCODER.encode`` builds afresh on every call, built
    once (it is most of the cost of encoding a small value), or that method
    where the C accelerator is missing."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    # No circular-reference markers: a shared dict would keep stale entries
    # after a failed call; a cycle ends in RecursionError instead.
    encode = make(None, _ENCODER.default, json.encoder.encode_basestring, None,
                  ":", ",", False, False, False)  # fmt: skip

    def encode_text(value: Any) -> str:
        return "".join(encode(value, 0))

    return encode_text


_encode = _c_encoder()


def encode_value(namespace: str, key: str, value: Any, max_bytes: int) -> str:
    """Serialise ``value`` to compact JSON, refusing what JSON cannot carry."""
    try:
        text = _encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValue(namespace, key, f"not JSON-serialisable: {exc}") from None

    # A character is at most 4 bytes of UTF-8: most values need no count.
    if len(text) * 4 <= max_bytes:
        return text
    size = len(text.encode())
    if size > max_bytes:
        raise InvalidValue(
            namespace, key, f"{size} bytes of JSON exceeds the bound of {max_bytes}"
        )
    return text


#: The (C) scanner that json.loads reaches through three Python wrappers
#: (typeshed does not declare the attribute).
_scan_json: Callable[[str, int], tuple[Any, int]]
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode_value(text: str) -> Any:
    """Decode what ``encode_value`` made: the value as ``get`` would return it."""
    # Compact JSON of our own making: no surrounding space to skip.
    return _scan_json(text, 0)[0]


def check_limit(limit: object, maximum: int = 1000) -> int:
    """Return a page size, refusing anything outside 1..maximum."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be an integer, not {limit!r}")
    if not 1 <= limit <= maximum:
        raise ValueError(f"limit must be between 1 and {maximum}, not {limit}")
    return limit


def check_expected_version(version: object) -> str:
    """Return the script argument for an ``expect_version``; "" means any."""
    if version is None:
        return ""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(
            f"expect_version must be a non-negative integer, not {version!r}"
        )
    return str(version)
