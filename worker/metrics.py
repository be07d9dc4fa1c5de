"""The worker's own Prometheus metrics, served on ``WORKER_METRICS_HOST:WORKER_METRICS_PORT``.

The order path only bumps numbers in memory (a lock and an addition: no I/O, no allocation of
label sets); everything else is read when Prometheus scrapes (IB connected, pacing, jobs done) or
sampled on a slow timer (the notice backlog is a database count, so it is not run per scrape).

The metrics are plain counters behind one lock, exposed through a custom collector on a private
registry, rather than ``prometheus_client.Counter`` objects: those switch to file-backed values when
``PROMETHEUS_MULTIPROC_DIR`` is in the environment (the web server's multiprocess mode), and a worker
started with the web server's environment must not write into the web server's files.

Rejections are labelled with a small fixed set of reason classes (:data:`REASON_CLASSES`), never the
free text, so the number of time series stays bounded whatever IB or an alert says.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

log = logging.getLogger(__name__)

# Upper bounds in seconds from the alert's arrival at the web server to its last leg on the wire
# to IB: a few ms when a worker is idle, seconds when alerts queue at the pacer or wait for IB.
ALERT_TO_WIRE_BUCKETS = (
    0.005,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)

# Every value the ``reason`` label of tv2ib_worker_alerts_rejected_total can take.
REASON_CLASSES = ("paused", "stale", "symbol", "not_supported", "plan", "broker", "risk", "error", "other")
FILL_LEGS = ("entry", "tp", "sl", "exit", "other")
NOTICE_SAMPLE_SECONDS = 15.0


def reason_class(reason: str | None, status: str | None = None) -> str:
    """Map a refusal's free text to one of :data:`REASON_CLASSES` (first match wins)."""
    text = (reason or "").strip().lower()
    text = text.removeprefix("test: would be refused: ")  # a test alert's: classed by what refused it
    if status == "failed" or text.startswith("worker error"):
        return "error"
    if text.startswith("trading paused") or text == "paused":
        return "paused"
    if text.startswith("stale"):
        return "stale"
    if text.startswith("ib:"):
        return "broker"
    if text.startswith(("risk", "margin:")):  # margin: IB's what-if refusal (worker/decision/margin.py)
        return "risk"
    if "not supported" in text:
        return "not_supported"
    if (
        "unknown futures root" in text
        or "no unique contract" in text
        or "not a currency pair" in text
        or "unsupported crypto" in text
        or "empty ticker" in text
        or "unknown symbol" in text
    ):
        return "symbol"
    if text:
        return "plan"
    return "other"


class WorkerMetrics:
    """Counters the worker updates, and the collector that exposes them with sampled values."""

    def __init__(
        self,
        *,
        account: str | None = None,
        client_id: int | None = None,
        ib_connected: Callable[[], bool] | None = None,
        pacing: Callable[[], tuple[int, float]] | None = None,
        pacing_violations: Callable[[], int] | None = None,
        jobs_done: Callable[[], int] | None = None,
        notice_backlog: Callable[[], int] | None = None,
    ) -> None:
        self.account = account or ""
        self.client_id = "" if client_id is None else str(client_id)
        self._ib_connected = ib_connected
        self._pacing = pacing
        self._pacing_violations = pacing_violations
        self._jobs_done = jobs_done
        self._notice_backlog = notice_backlog
        self._lock = threading.Lock()
        self._wire_buckets = [0] * len(ALERT_TO_WIRE_BUCKETS)
        self._wire_count = 0
        self._wire_sum = 0.0
        self._fills = dict.fromkeys(FILL_LEGS, 0)
        self._rejections = dict.fromkeys(REASON_CLASSES, 0)
        self._order_rejections = 0
        self._backlog: int | None = None
        self._stop = threading.Event()
        self._server: Any = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ updates (cheap, any thread)

    def observe_alert_to_wire(self, seconds: float) -> None:
        """One alert's time from its arrival at the web server to its last leg on the wire."""
        seconds = max(0.0, seconds)
        with self._lock:
            self._wire_count += 1
            self._wire_sum += seconds
            for i, bound in enumerate(ALERT_TO_WIRE_BUCKETS):
                if seconds <= bound:
                    self._wire_buckets[i] += 1
                    break  # stored per bucket; cumulated at scrape time

    def count_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Count committed facts from the recorder's events: fills and refusals (each exactly once)."""
        with self._lock:
            for event in events:
                kind = event.get("type")
                if kind == "fill":
                    leg = event.get("leg")
                    self._fills[leg if leg in self._fills else "other"] += 1
                elif kind == "alert_rejected":
                    cls = reason_class(event.get("reason"), event.get("status"))
                    self._rejections[cls] += 1
                elif kind == "order_rejected":
                    self._order_rejections += 1

    # ------------------------------------------------------------------ exposition

    def sample_notice_backlog(self) -> None:
        """Count unsent notices now (a database query: run on the sampler thread, not per scrape)."""
        if self._notice_backlog is None:
            return
        try:
            value = int(self._notice_backlog())
        except Exception as exc:  # noqa: BLE001 - a metric must never take the worker down
            log.debug("notice backlog not sampled: %s", exc)
            value = None
        with self._lock:
            self._backlog = value

    def collect(self) -> Iterator[Metric]:
        """The prometheus_client collector protocol: every metric family, read now."""
        with self._lock:
            buckets = list(self._wire_buckets)
            count, total = self._wire_count, self._wire_sum
            fills = dict(self._fills)
            rejections = dict(self._rejections)
            order_rejections = self._order_rejections
            backlog = self._backlog
        info = GaugeMetricFamily(
            "tv2ib_worker_info", "This worker's IB account and client id (always 1).",
            labels=["account", "client_id"],
        )  # fmt: skip
        info.add_metric([self.account, self.client_id], 1)
        yield info
        cumulative, running = [], 0
        for bound, n in zip(ALERT_TO_WIRE_BUCKETS, buckets, strict=True):
            running += n
            cumulative.append((_le(bound), running))
        cumulative.append(("+Inf", count))
        yield HistogramMetricFamily(
            "tv2ib_worker_alert_to_wire_seconds",
            "Time from the alert's arrival at the web server to its last order leg on the wire to IB.",
            buckets=cumulative,
            sum_value=total,
        )
        yield _by_label("tv2ib_worker_fills", "Executions recorded, by order leg.", "leg", fills)
        yield _by_label("tv2ib_worker_alerts_rejected", "Alerts refused or failed by the worker, by reason class ("
                        + ", ".join(REASON_CLASSES) + ").", "reason", rejections)  # fmt: skip
        yield CounterMetricFamily(
            "tv2ib_worker_order_rejections", "Orders IB refused (any leg).", value=order_rejections
        )
        yield from self._sampled(backlog)

    def _sampled(self, backlog: int | None) -> Iterator[Metric]:
        """The figures read from the worker's parts at scrape time (those it was given)."""
        if self._ib_connected is not None:
            yield GaugeMetricFamily(
                "tv2ib_worker_ib_connected", "1 while the IB connection is up and usable, else 0.",
                value=1 if self._ib_connected() else 0,
            )  # fmt: skip
        if self._pacing is not None:
            waits, seconds = self._pacing()
            yield CounterMetricFamily(
                "tv2ib_worker_pacing_waits", "Order sends that waited at the pacer (IB's 50 msg/s rule).",
                value=waits,
            )  # fmt: skip
            yield CounterMetricFamily(
                "tv2ib_worker_pacing_wait_seconds", "Seconds order sends spent waiting at the pacer.",
                value=seconds,
            )  # fmt: skip
        if self._pacing_violations is not None:
            yield CounterMetricFamily(
                "tv2ib_worker_ib_pacing_violations", "IB error 100 answers (pacing violation).",
                value=self._pacing_violations(),
            )  # fmt: skip
        if self._jobs_done is not None:
            yield CounterMetricFamily(
                "tv2ib_worker_jobs", "Queue jobs finished by this worker.", value=self._jobs_done()
            )
        if backlog is not None:
            yield GaugeMetricFamily(
                "tv2ib_worker_notices_unsent",
                f"Notices in the database not yet sent to Telegram (sampled every {NOTICE_SAMPLE_SECONDS:.0f} s).",
                value=backlog,
            )

    def registry(self) -> CollectorRegistry:
        """A private registry holding only this collector (no process/platform defaults)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    # ------------------------------------------------------------------ serving

    def serve(self, host: str, port: int, sample_every: float = NOTICE_SAMPLE_SECONDS) -> int:
        """Serve ``/metrics`` on ``host:port`` (daemon threads) and start the backlog sampler.

        Returns the bound port (``port=0`` picks a free one)."""
        server, thread = start_http_server(port, addr=host, registry=self.registry())
        self._server = server
        self._threads.append(thread)
        sampler = threading.Thread(
            target=self._sample_loop, args=(sample_every,), name="metrics", daemon=True
        )
        sampler.start()
        self._threads.append(sampler)
        bound = int(server.server_address[1])
        log.info("worker metrics on http://%s:%s/metrics", host, bound)
        return bound

    def _sample_loop(self, every: float) -> None:
        while not self._stop.is_set():
            self.sample_notice_backlog()
            self._stop.wait(every)

    def stop(self) -> None:
        """Stop serving and sampling."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _by_label(name: str, documentation: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, n in counts.items():
        family.add_metric([value], n)
    return family


def _le(bound: float) -> str:
    return repr(float(bound))
