"""``redismem serve``: run the realtime server on uvicorn."""

from __future__ import annotations

import gc
from pathlib import Path

import click

from redismem.aio.limiter import RateLimiter
from redismem.cli.app import Context, main, pass_context

#: How long an API call's rate-limit check may take before the limiter fails
#: open or closed (its configured choice).
LIMITER_TIMEOUT = 0.25


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option("--url", default=None, help="Redis URL; overrides the global --url.")
@click.option(
    "--no-auth",
    is_flag=True,
    help="Let every caller in with every right (development only).",
)
@click.option(
    "--jwt-secret",
    envvar="REDISMEM_JWT_SECRET",
    help="HS256 secret (env REDISMEM_JWT_SECRET).",
)
@click.option(
    "--jwt-public-key",
    type=click.Path(exists=True, dir_okay=False),
    help="RS256 public key (PEM file).",
)
@click.option("--jwt-audience", help="Required JWT audience (aud).")
@click.option("--jwt-issuer", help="Required JWT issuer (iss).")
@click.option(
    "--api-keys",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON file of static API keys.",
)
@click.option(
    "--max-connections", default=10_000, show_default=True, type=click.IntRange(1)
)
@click.option(
    "--max-connections-per-subject",
    default=1_000,
    show_default=True,
    type=click.IntRange(1),
)
@click.option(
    "--max-connections-per-address",
    default=1_000,
    show_default=True,
    type=click.IntRange(1),
)
@click.option(
    "--max-subscriptions",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Per connection.",
)
@click.option(
    "--max-message-bytes",
    default=64 * 1024,
    show_default=True,
    type=click.IntRange(128),
)
@click.option(
    "--max-send-buffer",
    default=1024 * 1024,
    show_default=True,
    type=click.IntRange(1024),
    help="Bytes a client may fall behind before it is evicted.",
)
@click.option(
    "--heartbeat",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="WebSocket ping and SSE keep-alive interval (s).",
)
@click.option(
    "--heartbeat-timeout",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Close a WebSocket peer that does not answer a ping in this time (s).",
)
@click.option(
    "--drain-seconds",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5),
    help="Bound on a graceful shutdown (s).",
)
@click.option(
    "--rate-limit-policy",
    metavar="NAME",
    help="Limit API calls per subject and operation by this live policy "
    "(see `redismem limits set`); default: no rate limit.",
)
@pass_context
def serve(
    ctx: Context,
    host: str,
    port: int,
    url: str | None,
    no_auth: bool,
    jwt_secret: str | None,
    jwt_public_key: str | None,
    jwt_audience: str | None,
    jwt_issuer: str | None,
    api_keys: str | None,
    max_connections: int,
    max_connections_per_subject: int,
    max_connections_per_address: int,
    max_subscriptions: int,
    max_message_bytes: int,
    max_send_buffer: int,
    heartbeat: float,
    heartbeat_timeout: float,
    drain_seconds: float,
    rate_limit_policy: str | None,
) -> None:
    """Serve WebSocket (/ws), SSE (/sse), the HTTP API (/v1), /healthz and /metrics."""
    try:
        from redismem.server import AuthConfig, ServerConfig, create_app
        from redismem.server.app import command_client, resolve_url
        from redismem.server.auth import load_api_keys
        from redismem.server.ratelimit import RateLimiter as ServerRateLimiter
        from redismem.server.ratelimit import policy_limiter, unlimited
        from redismem.server.shutdown import DrainingServer, uvicorn_config
    except ImportError as exc:  # the server extra is not installed
        raise click.ClickException(f"{exc}; install redismem[server]") from None

    if not (no_auth or jwt_secret or jwt_public_key or api_keys):
        raise click.UsageError(
            "give --jwt-secret, --jwt-public-key or --api-keys, or --no-auth"
        )

    auth = AuthConfig(
        enabled=not no_auth,
        jwt_secret=jwt_secret,
        jwt_public_key=Path(jwt_public_key).read_text() if jwt_public_key else None,
        jwt_audience=jwt_audience,
        jwt_issuer=jwt_issuer,
        api_keys=load_api_keys(api_keys) if api_keys else {},
    )
    redis_url = resolve_url(url or _configured_url(ctx))
    rate_limiter: ServerRateLimiter = unlimited
    if rate_limit_policy:
        # A burst of API calls waits for a pooled connection (briefly: the
        # limiter's timeout) instead of being refused and let through open.
        limiter_client = command_client(
            redis_url,
            wait=LIMITER_TIMEOUT,
            socket_timeout=LIMITER_TIMEOUT,
            socket_connect_timeout=LIMITER_TIMEOUT,
        )
        rate_limiter = policy_limiter(
            RateLimiter(limiter_client, timeout=LIMITER_TIMEOUT), rate_limit_policy
        )
    config = ServerConfig(
        url=redis_url,
        auth=auth,
        rate_limiter=rate_limiter,
        max_connections=max_connections,
        max_connections_per_subject=max_connections_per_subject,
        max_connections_per_address=max_connections_per_address,
        max_subscriptions=max_subscriptions,
        max_message_bytes=max_message_bytes,
        max_send_buffer=max_send_buffer,
        heartbeat=heartbeat,
        heartbeat_timeout=heartbeat_timeout,
        drain_seconds=drain_seconds,
    )
    app = create_app(config)
    server = DrainingServer(uvicorn_config(app, host, port, log_level="warning"), app)

    # Long-lived objects made at start-up need never be scanned again; with
    # thousands of connections, full collections otherwise cause latency spikes.
    gc.collect()
    gc.freeze()
    server.run()


def _configured_url(ctx: Context) -> str | None:
    """The global --url, unless it was left at its default (then: autodetect)."""
    click_ctx = click.get_current_context().find_root()
    source = click_ctx.get_parameter_source("url")
    if source is click.core.ParameterSource.DEFAULT:
        return None
    return ctx.url
