"""A bounded load generator: a few threads play the application against one database.

The cookbook tests (tests/sqlmigrations/test_cookbook.py) and bench/online_migration_bench.py
run a migration while this load reads and writes the table it changes, and then ask how
long the slowest application query waited and whether any failed. A stall shows up as one
long latency, so every query is recorded, not sampled. A monitor also records how long the
load's queries waited for a lock (pg_stat_activity, every 20 ms): on a busy machine a
query can take a second for want of CPU or disk with no lock involved, which a migration
recipe cannot prevent; a lock wait is what a migration causes.

Bounded on purpose, on a machine shared with other work: a fixed number of threads, each
with one connection on loopback, a pause between queries (a maximum rate), and a
`statement_timeout` on every query as a safety net, so a stall never hangs the test.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import psycopg

Params = Callable[[random.Random], Mapping[str, Any]]


@dataclass(frozen=True)
class Sample:
    """One application query: when it started (monotonic), how long it took, how it ended."""

    start: float
    latency: float
    query: str
    error: str | None = None


@dataclass(frozen=True)
class Summary:
    """What the load saw: counts and latencies in seconds."""

    count: int
    errors: list[Sample]
    p50: float
    p99: float
    max: float
    slowest: Sample | None

    def __str__(self) -> str:
        slowest = f" ({self.slowest.query[:60]})" if self.slowest else ""
        return (
            f"{self.count} queries, {len(self.errors)} failed, p50 {self.p50 * 1000:.1f} ms, "
            f"p99 {self.p99 * 1000:.1f} ms, max {self.max * 1000:.1f} ms{slowest}"
        )


def summarize(samples: Sequence[Sample]) -> Summary:
    """Summarize `samples` (failed queries count in the latencies too: they waited)."""
    latencies = sorted(s.latency for s in samples)
    if not latencies:
        return Summary(0, [], 0.0, 0.0, 0.0, None)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Summary(
        count=len(latencies),
        errors=[s for s in samples if s.error is not None],
        p50=statistics.median(latencies),
        p99=p99,
        max=latencies[-1],
        slowest=max(samples, key=lambda s: s.latency),
    )


@dataclass
class LoadGenerator:
    """Run `queries` in a loop on `threads` connections until stopped; record every one.

    Each query is a SQL string with named placeholders filled from `params(rng)`; each
    thread runs them in turn, autocommit, pausing `pause` seconds after each one.
    """

    conninfo: Mapping[str, Any]
    queries: Sequence[str]
    params: Params
    threads: int = 4
    pause: float = 0.005
    statement_timeout: str = "60s"
    application_name: str = "cookbook-load"
    samples: list[Sample] = field(default_factory=list)
    # (monotonic time seen, seconds the query had been waiting for a lock by then)
    lock_waits: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started: threading.Barrier | None = None

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Connect every thread, then return once each has run its first round of queries."""
        self._started = threading.Barrier(self.threads + 1)
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)
        monitor = threading.Thread(target=self._watch_locks, daemon=True)
        monitor.start()
        self._workers.append(monitor)
        try:
            self._started.wait(timeout=60)
        except threading.BrokenBarrierError:
            self.stop()  # no thread is left running when start() fails
            raise

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=120)
        self._workers.clear()

    def lock_wait(self, since: float = 0.0) -> float:
        """The longest lock wait seen of a query that was waiting at or after `since`."""
        with self._lock:
            return max((w for t, w in self.lock_waits if t >= since), default=0.0)

    def _watch_locks(self) -> None:
        with psycopg.connect(**self.conninfo, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT extract(epoch FROM clock_timestamp() - query_start)::float8 "
                    "FROM pg_stat_activity WHERE application_name = %s "
                    "AND wait_event_type = 'Lock' AND state = 'active'",
                    (self.application_name,),
                ).fetchall()
                seen = time.monotonic()
                with self._lock:
                    self.lock_waits.extend((seen, waited) for (waited,) in rows)
                time.sleep(0.02)

    def mark(self) -> float:
        """Return now, to select the samples of a window: `summary(since=mark)`."""
        return time.monotonic()

    def summary(self, since: float = 0.0, until: float | None = None) -> Summary:
        """Summarize the queries that started in [since, until]."""
        end = until if until is not None else float("inf")
        with self._lock:
            window = [s for s in self.samples if since <= s.start <= end]
        return summarize(window)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            **self.conninfo,
            autocommit=True,
            application_name=self.application_name,
            options=f"-c statement_timeout={self.statement_timeout}",
        )

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        conn: psycopg.Connection[Any] | None = None
        first_round = True
        try:
            while not self._stop.is_set():
                if conn is None or conn.closed:
                    conn = self._connect()
                for query in self.queries:
                    values = self.params(rng)
                    start = time.monotonic()
                    error = None
                    try:
                        conn.execute(query, values).close()
                    except psycopg.Error as err:  # recorded: the test asserts on it
                        error = f"{type(err).__name__}: {err}".strip()
                        if conn.broken:
                            conn = None
                    sample = Sample(start, time.monotonic() - start, query, error)
                    with self._lock:
                        self.samples.append(sample)
                    if conn is None:
                        break
                    time.sleep(self.pause)
                if first_round and self._started is not None:
                    first_round = False
                    self._started.wait(timeout=60)
        finally:
            if first_round and self._started is not None:
                self._started.abort()  # start() raises instead of waiting a minute
            if conn is not None:
                conn.close()
