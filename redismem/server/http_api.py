"""The HTTP API: read, write, delete and list records, page the change log.

Every write goes through the same Lua scripts as the Python client. Errors
are JSON, ``{"error": {"code": ..., "message": ...}}``; answers carry the
RateLimit headers when the limiter reports them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
import redis.exceptions
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from redismem.errors import (
    InvalidKey,
    InvalidNamespace,
    InvalidToken,
    InvalidValue,
    RecordExists,
    RecordNotFound,
    StaleToken,
    ValidationError,
    VersionConflict,
)
from redismem.models import ChangeEvent, Record
from redismem.server import protocol, ratelimit
from redismem.server.asgi import error_body
from redismem.server.auth import AuthError, Principal, credential_from
from redismem.server.patterns import Pattern
from redismem.server.state import ServerState

Handler = Callable[[Request, ServerState, Principal], Awaitable[Response]]

MODES = ("put", "create", "update")


class ApiError(Exception):
    """An answer other than success: status, code and message."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def json(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response."""
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def record_body(record: Record) -> dict[str, Any]:
    """A record as the API returns it."""
    return {
        "ns": record.namespace,
        "key": record.key,
        "value": record.value,
        "version": record.version,
        "created": record.created,
        "updated": record.updated,
    }


def event_body(event: ChangeEvent) -> dict[str, Any]:
    """A change event as the API returns it (the same fields as a WS event)."""
    return {
        "token": event.token,
        "ns": event.namespace,
        "key": event.key,
        "op": event.op,
        "version": event.version,
        "seq": event.seq,
        "ts": event.ts,
        "epoch": event.epoch,
        "id": event.id,
        "value": event.value,
    }


def endpoint(
    operation: str, access: str
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler with authentication, authorisation, rate limiting and errors."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            state: ServerState = request.app.state.server
            decision = ratelimit.ALLOW
            try:
                principal = state.authenticator.authenticate(
                    credential_from(request.headers, request.query_params)
                )
                namespace = _param(request, "namespace")
                if access == "write":
                    principal.require_write(namespace)
                else:
                    principal.require_read(Pattern(namespace, namespace, exact=True))
                decision = await ratelimit.decide(
                    state.config.rate_limiter, principal.subject, operation
                )
                if not decision.allowed:
                    state.metrics.rate_limited.labels(operation).inc()
                    raise ApiError(
                        429,
                        protocol.RATE_LIMITED,
                        f"too many {operation} calls",
                        retry_after=decision.retry_after,
                    )
                response = await handler(request, state, principal)
            except AuthError as exc:
                state.metrics.auth_failures.labels(exc.code).inc()
                response = json(error_body(exc.code, exc.reason), exc.status)
            except ApiError as exc:
                response = json(
                    error_body(exc.code, exc.message, **exc.extra), exc.status
                )
            except (redis.exceptions.RedisError, OSError):
                response = json(
                    error_body(protocol.UNAVAILABLE, "Redis is unavailable; retry"), 503
                )
            except Exception as exc:
                mapped = _mapped(exc)
                if mapped is None:
                    raise
                response = json(
                    error_body(mapped.code, mapped.message, **mapped.extra),
                    mapped.status,
                )
            response.headers.update(ratelimit.headers(decision, operation))
            return response

        return run

    return wrap


def _mapped(exc: Exception) -> ApiError | None:
    """The API answer for an error the store raised, if it is an expected one."""
    if isinstance(exc, VersionConflict):
        return ApiError(
            409, "version_conflict", str(exc), expected=exc.expected, actual=exc.actual
        )
    if isinstance(exc, RecordExists):
        return ApiError(409, "record_exists", str(exc), actual=exc.actual)
    if isinstance(exc, RecordNotFound):
        return ApiError(404, "record_not_found", str(exc))
    if isinstance(exc, StaleToken):
        return ApiError(410, "stale_token", str(exc), epoch=exc.epoch)
    codes = {
        InvalidNamespace: "invalid_namespace",
        InvalidKey: "invalid_key",
        InvalidValue: "invalid_value",
        InvalidToken: "invalid_token",
    }
    for kind, code in codes.items():
        if isinstance(exc, kind):
            return ApiError(400, code, str(exc))
    if isinstance(exc, (ValidationError, ValueError)):
        return ApiError(400, "invalid_request", str(exc))
    return None


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} must be an integer") from None


def _param(request: Request, name: str) -> str:
    """A path parameter, percent-decoded (see ``app._segments_kept``)."""
    return unquote(request.path_params[name])


def _store(state: ServerState) -> Any:
    assert state.store is not None
    return state.store


@endpoint("get", "read")
async def get_record(
    request: Request, state: ServerState, principal: Principal
) -> Response:
    """``GET /v1/namespaces/{ns}/records/{key}``."""
    namespace, key = _param(request, "namespace"), _param(request, "key")
    record = await _store(state).get(namespace, key)
    if record is None:
        raise ApiError(
            404, "record_not_found", f"record {namespace}/{key} does not exist"
        )
    return json(record_body(record))


@endpoint("put", "write")
async def put_record(
    request: Request, state: ServerState, principal: Principal
) -> Response:
    """``PUT /v1/namespaces/{ns}/records/{key}`` with ``{"value": ..., ...}``."""
    namespace, key = _param(request, "namespace"), _param(request, "key")
    body = await _json_body(request, state.config.max_message_bytes)
    if not isinstance(body, dict) or "value" not in body:
        raise ApiError(400, "invalid_request", 'the body must be {"value": ...}')
    mode = body.get("mode", "put")
    if mode not in MODES:
        raise ApiError(
            400, "invalid_request", f"mode must be one of {', '.join(MODES)}"
        )

    store = _store(state)
    expect = body.get("expect_version")
    if mode == "create":
        record = await store.create(namespace, key, body["value"])
    elif mode == "update":
        record = await store.update(
            namespace, key, body["value"], expect_version=expect
        )
    else:
        record = await store.put(namespace, key, body["value"], expect_version=expect)
    return json(record_body(record), 201 if record.version == 1 else 200)


@endpoint("delete", "write")
async def delete_record(
    request: Request, state: ServerState, principal: Principal
) -> Response:
    """``DELETE /v1/namespaces/{ns}/records/{key}[?expect_version=N]``."""
    namespace, key = _param(request, "namespace"), _param(request, "key")
    expect = _int_param(request, "expect_version", None)
    if not await _store(state).delete(namespace, key, expect_version=expect):
        raise ApiError(
            404, "record_not_found", f"record {namespace}/{key} does not exist"
        )
    return json({"deleted": True})


@endpoint("list", "read")
async def list_records(
    request: Request, state: ServerState, principal: Principal
) -> Response:
    """``GET /v1/namespaces/{ns}/records[?after=KEY&limit=N]``."""
    limit = _int_param(request, "limit", 100)
    page = await _store(state).list(
        _param(request, "namespace"),
        after=request.query_params.get("after"),
        limit=limit,
    )
    return json({"items": [record_body(r) for r in page.items], "next": page.next})


@endpoint("changes", "read")
async def list_changes(
    request: Request, state: ServerState, principal: Principal
) -> Response:
    """``GET /v1/namespaces/{ns}/changes[?after=TOKEN&limit=N]``."""
    limit = _int_param(request, "limit", 100)
    page = await _store(state).changes(
        _param(request, "namespace"),
        after=request.query_params.get("after"),
        limit=limit,
    )
    return json({"items": [event_body(e) for e in page.items], "next": page.next})


async def _json_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413, protocol.MESSAGE_TOO_BIG, f"bodies are limited to {limit} bytes"
        )
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ApiError(
                413, protocol.MESSAGE_TOO_BIG, f"bodies are limited to {limit} bytes"
            )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_request", "the body is not JSON") from None


routes = [
    Route("/v1/namespaces/{namespace}/records", list_records, methods=["GET"]),
    Route("/v1/namespaces/{namespace}/records/{key}", get_record, methods=["GET"]),
    Route("/v1/namespaces/{namespace}/records/{key}", put_record, methods=["PUT"]),
    Route(
        "/v1/namespaces/{namespace}/records/{key}", delete_record, methods=["DELETE"]
    ),
    Route("/v1/namespaces/{namespace}/changes", list_changes, methods=["GET"]),
]
