"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jstore.online.lookup import LookupResult


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "jstore_request_seconds",
            "Request latency by route.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.redis_hits = Counter(
            "jstore_online_redis_hits", "Entity keys found in Redis.", registry=self.registry
        )
        self.redis_misses = Counter(
            "jstore_online_redis_misses",
            "Entity keys absent from Redis (answered with the empty-window values).",
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "jstore_online_fallbacks",
            "Entity lookups answered from the offline store.",
            registry=self.registry,
        )
        self.lag = Gauge(
            "jstore_view_freshness_seconds",
            "How far a view's published coverage end lags now, as of the latest lookup.",
            ["view"],
            registry=self.registry,
        )

    def observe_lookup(self, result: LookupResult) -> None:
        self.redis_hits.inc(result.hits)
        self.redis_misses.inc(result.misses)
        self.fallbacks.inc(result.fallbacks)
        for view, seconds in result.lag_seconds.items():
            self.lag.labels(view).set(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
