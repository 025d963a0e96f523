"""Prometheus metrics of the API, cheap on the hot path.

One worker: requests are counted in plain Python structures and rendered by a collector at
scrape time (a prometheus_client Counter + Histogram cost ~5% of a request here). Several
workers: prometheus_client's multiprocess mode, switched on by `python -m serving`
(PROMETHEUS_MULTIPROC_DIR, a fresh folder per server, STREAMFLOW_METRICS_MP=1) before this module
is imported, so /metrics adds up every worker. Importing Feast also sets PROMETHEUS_MULTIPROC_DIR
(to a folder of its own), so the mode is fixed here, at import, and never read again.
"""

from __future__ import annotations

import bisect
import time

from streamflow import config

MULTIPROCESS = bool(config.get(config.METRICS_MULTIPROCESS)) and config.is_set(config.PROMETHEUS_DIR)

from prometheus_client import (  # after the mode is decided
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

REQUESTS_NAME, REQUESTS_HELP = "streamflow_requests", "HTTP requests by route and status."
LATENCY_NAME, LATENCY_HELP = "streamflow_request_duration_seconds", "HTTP request latency by route."
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FRESHNESS = Gauge(
    "streamflow_feature_view_latest_event_timestamp_seconds",
    "Newest event timestamp in the online store, per feature view (unix seconds).",
    ["feature_view"],
    multiprocess_mode="max",
)
DRIFT = Gauge(
    "streamflow_feature_drift_js_distance",
    "Jensen-Shannon distance of each feature's newest as_of month to the baseline month (make monitor).",
    ["feature_view", "feature"],
    multiprocess_mode="mostrecent",
)
DRIFT_THRESHOLD = Gauge(
    "streamflow_feature_drift_threshold",
    "Jensen-Shannon distance above which a feature is flagged, by level (watch, drift).",
    ["level"],
    multiprocess_mode="mostrecent",
)
SKEW = Gauge(
    "streamflow_skew_ratio",
    "Share of each feature's served values the replay found skewed (a value the offline tables do "
    "not hold at the time it was served), over the last day of served time it checked.",
    ["feature_view", "feature"],
    multiprocess_mode="mostrecent",
)
# The monthly job's own health (monitoring.job_runs: streamflow/control/job_runs.py), its last run
JOB_LAST_RUN = Gauge(
    "streamflow_job_last_run_timestamp_seconds",
    "When the monthly job's last run started (unix seconds; the plain runner's or the flow's).",
    multiprocess_mode="mostrecent",
)
JOB_LAST_FAILED = Gauge(
    "streamflow_job_last_run_failed",
    "1 when the monthly job's last finished run failed, else 0 (the step: monitoring.job_runs).",
    multiprocess_mode="mostrecent",
)
JOB_LAST_DURATION = Gauge(
    "streamflow_job_last_run_duration_seconds",
    "How long the monthly job's last finished run took.",
    multiprocess_mode="mostrecent",
)
JOB_LAST_SUCCESS = Gauge(
    "streamflow_job_last_success_timestamp_seconds",
    "When the monthly job last finished a run that succeeded (unix seconds).",
    multiprocess_mode="mostrecent",
)
JOB_STEP_DURATION = Gauge(
    "streamflow_job_step_duration_seconds",
    "Each step's time in the monthly job's last finished run (its last try).",
    ["step"],
    multiprocess_mode="mostrecent",
)
READY = Gauge(
    "streamflow_ready",
    "1 when the registry and the online store answer (as /ready), at the last scrape; else 0.",
    multiprocess_mode="mostrecent",
)

# Each worker's memory of served vectors (serving/cache.py), published once a second and at each
# scrape (serving/resources.py: CacheFigures): the hot path only adds to plain integers.
CACHE_EVENTS = Counter(
    "streamflow_cache_lookups",
    "Reads answered from a worker's memory (hit), from the store (miss), or from memory while the "
    "store did not answer (outage); entries dropped for room (eviction).",
    ["outcome"],
)
SERVED_LOG = Counter(
    "streamflow_served_log_records",
    "Served vectors the workers logged for the replay (logged), or dropped: the queue between "
    "flushes full (dropped_queue), the spool over SERVED_LOG_MAX_MB (dropped_disk).",
    ["outcome"],
)
CACHE_BYTES = Gauge(
    "streamflow_cache_bytes", "Bytes of served vectors the workers hold.", multiprocess_mode="livesum"
)
CACHE_ENTRIES = Gauge("streamflow_cache_entries", "Vectors the workers hold.", multiprocess_mode="livesum")
CACHE_GENERATION = Gauge(
    "streamflow_cache_generation",
    "The online store's generation the workers last confirmed (the lowest of them).",
    multiprocess_mode="livemin",
)
CACHE_CONFIRMED = Gauge(
    "streamflow_cache_confirmed",
    "1 when every worker confirmed the store's generation within the last second (memory in use).",
    multiprocess_mode="livemin",
)


class InProcessRequestMetrics:
    """Request counts and latency histograms as plain numbers, rendered when scraped."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], list] = {}  # [per-bucket counts..., +Inf count, sum]

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        self.counts[key] = self.counts.get(key, 0) + 1
        slot = self.latency.get((method, route))
        if slot is None:
            slot = self.latency[(method, route)] = [0] * (len(BUCKETS) + 1) + [0.0]
        slot[bisect.bisect_left(BUCKETS, seconds)] += 1
        slot[-1] += seconds

    def collect(self):
        requests = CounterMetricFamily(REQUESTS_NAME, REQUESTS_HELP, labels=["method", "route", "status"])
        for labels, count in self.counts.items():
            requests.add_metric(list(labels), count)
        yield requests
        latency = HistogramMetricFamily(LATENCY_NAME, LATENCY_HELP, labels=["method", "route"])
        for labels, slot in self.latency.items():
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), slot[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric(list(labels), buckets, slot[-1])
        yield latency


class MultiProcessRequestMetrics:
    def __init__(self) -> None:
        self.requests = Counter(REQUESTS_NAME, REQUESTS_HELP, ["method", "route", "status"])
        self.duration = Histogram(LATENCY_NAME, LATENCY_HELP, ["method", "route"], buckets=BUCKETS)

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


if MULTIPROCESS:
    REQUEST_METRICS = MultiProcessRequestMetrics()
else:
    REQUEST_METRICS = InProcessRequestMetrics()
    REGISTRY.register(REQUEST_METRICS)


def render() -> tuple[bytes, str]:
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (bounded label values)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("path_template") or "unmatched"
            REQUEST_METRICS.record(scope["method"], route, status, time.perf_counter() - started)
