"""Prometheus metrics of one server process, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

#: Write-to-delivery lag buckets (seconds): sub-millisecond to seconds.
LAG_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class Metrics:
    """Every metric the server exports, named ``redismem_*``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.connections = Gauge(
            "redismem_connections",
            "Open client connections.",
            ["transport"],
            registry=registry,
        )
        self.subscriptions = Gauge(
            "redismem_subscriptions", "Active subscriptions.", registry=registry
        )
        self.delivered = Counter(
            "redismem_events_delivered",
            "Change events written to clients.",
            registry=registry,
        )
        self.dropped = Counter(
            "redismem_events_dropped",
            "Events not written because the connection was evicted as a slow "
            "consumer (the client resumes them from its token).",
            registry=registry,
        )
        self.coalesced = Counter(
            "redismem_events_coalesced",
            "Events not written because a newer event of the same key replaced "
            "them while a coalescing connection was behind (counted in "
            "delivered too; the newer event says how many it replaced).",
            registry=registry,
        )
        self.evicted = Counter(
            "redismem_slow_consumers_evicted",
            "Connections closed for falling behind.",
            registry=registry,
        )
        self.resumes = Counter(
            "redismem_resumes",
            "Subscriptions that asked to resume, by outcome (recovered or reset).",
            ["outcome"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "redismem_auth_failures",
            "Refused credentials, by code.",
            ["code"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "redismem_rate_limited",
            "Calls refused by the rate limiter.",
            ["operation"],
            registry=registry,
        )
        self.refused = Counter(
            "redismem_connections_refused",
            "Connections refused by a limit.",
            ["limit"],
            registry=registry,
        )
        self.pubsub_up = Gauge(
            "redismem_pubsub_up",
            "1 while the pub/sub link to Redis is up.",
            registry=registry,
        )
        self.lag = Histogram(
            "redismem_delivery_lag_seconds",
            "Time from the write in Redis to the event's delivery to clients.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    def exposition(self) -> bytes:
        """The text exposition format for ``/metrics``."""
        return generate_latest(self.registry)
