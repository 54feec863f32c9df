"""Bad input gets a clear error and changes nothing in Redis."""

from __future__ import annotations

from typing import Any

import pytest

from redismem import (
    InvalidKey,
    InvalidNamespace,
    InvalidToken,
    InvalidValue,
    MemoryStore,
)


def _snapshot(client: Any) -> dict[str, Any]:
    """Every key in Redis with its type, on every node of a cluster."""
    return {key: client.type(key) for key in client.scan_iter("*")}


@pytest.fixture
def seeded(store: MemoryStore, client: Any) -> dict[str, Any]:
    store.put("users", "alice", {"n": 1})
    return _snapshot(client)


@pytest.mark.parametrize(
    ("namespace", "reason"),
    [
        ("", "must not be empty"),
        ("a{b}", "use only"),
        ("users*", "use only"),
        ("with space", "use only"),
        ('quo"te', "use only"),
        ("-leading", "starting with a letter or digit"),
        ("x" * 129, "longer than 128"),
        (42, "must be a string"),
    ],
)
def test_an_invalid_namespace_is_refused_with_its_reason(
    store: MemoryStore, client: Any, seeded: dict[str, Any], namespace: Any, reason: str
) -> None:
    with pytest.raises(InvalidNamespace, match=reason):
        store.put(namespace, "k", 1)

    assert _snapshot(client) == seeded


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "must not be empty"),
        ("a}b", "use only"),
        ("new\nline", "use only"),
        ("back\\slash", "use only"),
        ("(paren", "use only"),
        ("k" * 513, "longer than 512"),
        (None, "must be a string"),
    ],
)
def test_an_invalid_key_is_refused_with_its_reason(
    store: MemoryStore, client: Any, seeded: dict[str, Any], key: Any, reason: str
) -> None:
    with pytest.raises(InvalidKey, match=reason):
        store.put("users", key, 1)

    assert _snapshot(client) == seeded


@pytest.mark.parametrize(
    "value", [{1, 2}, object(), float("nan"), float("inf"), {"k": b"bytes"}]
)
def test_a_value_json_cannot_carry_is_refused(
    store: MemoryStore, client: Any, seeded: dict[str, Any], value: Any
) -> None:
    with pytest.raises(InvalidValue, match="not JSON-serialisable"):
        store.put("users", "bob", value)

    assert _snapshot(client) == seeded


def test_a_value_that_contains_itself_is_refused(
    store: MemoryStore, client: Any, seeded: dict[str, Any]
) -> None:
    looped: list[Any] = ["x"]
    looped.append(looped)

    with pytest.raises(InvalidValue, match="not JSON-serialisable"):
        store.put("users", "bob", looped)

    assert _snapshot(client) == seeded


def test_a_multibyte_value_over_the_size_bound_is_refused(
    client: Any, seeded: dict[str, Any]
) -> None:
    store = MemoryStore(client, max_value_bytes=100)

    # 27 characters of JSON, 102 bytes of UTF-8.
    with pytest.raises(InvalidValue, match="102 bytes of JSON exceeds the bound"):
        store.put("users", "alice", "\U0001f600" * 25)

    assert _snapshot(client) == seeded


def test_a_value_over_the_size_bound_is_refused(
    client: Any, seeded: dict[str, Any]
) -> None:
    store = MemoryStore(client, max_value_bytes=100)

    with pytest.raises(InvalidValue, match="exceeds the bound of 100"):
        store.put("users", "alice", "x" * 100)

    assert _snapshot(client) == seeded
    assert store.put("users", "alice", "x" * 98).version == 2  # 100 bytes of JSON


def test_the_default_size_bound_is_one_mebibyte(store: MemoryStore) -> None:
    with pytest.raises(InvalidValue, match="exceeds the bound of 1048576"):
        store.put("big", "k", "x" * (1024 * 1024))


@pytest.mark.parametrize("version", [-1, "3", 1.0, True])
def test_a_malformed_expect_version_is_refused(
    store: MemoryStore, client: Any, seeded: dict[str, Any], version: Any
) -> None:
    with pytest.raises(ValueError, match="expect_version"):
        store.put("users", "alice", 2, expect_version=version)

    assert _snapshot(client) == seeded


@pytest.mark.parametrize("token", ["", "garbage", "1.2", "a.b.c-d", 7])
def test_a_malformed_token_is_refused(store: MemoryStore, token: Any) -> None:
    with pytest.raises(InvalidToken):
        store.changes("users", after=token)


@pytest.mark.parametrize("limit", [0, -1, 1001, "10", None])
def test_a_page_size_outside_1_to_1000_is_refused(
    store: MemoryStore, limit: Any
) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list("users", limit=limit)
    with pytest.raises(ValueError, match="limit"):
        store.changes("users", limit=limit)


def test_one_bad_write_in_put_many_refuses_the_whole_batch(
    store: MemoryStore, client: Any, seeded: dict[str, Any]
) -> None:
    with pytest.raises(InvalidKey):
        store.put_many([("users", "ok", 1), ("users", "bad key", 2)])

    assert _snapshot(client) == seeded


def test_a_malformed_put_many_item_is_refused(
    store: MemoryStore, client: Any, seeded: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="each write must be"):
        store.put_many([("users", "only-two")])  # type: ignore[list-item]

    assert _snapshot(client) == seeded
