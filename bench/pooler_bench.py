"""Benchmark PgBouncer (transaction pooling) against Django's native pool, 200 clients (D9).

    .venv/bin/python bench/pooler_bench.py [--clients 200] [--requests 20] [--pool-size 20]
                                           [--processes 4] [--rounds 3] [--write-every 5]

On a throwaway local cluster (TLS verify-full and SCRAM, never the machine's own server):
migrate, load 30,000 profiles, 2,000 households with their members and tasks, 300,000
completions and a month of assignments, VACUUM ANALYZE. Then --clients concurrent
clients, threads spread over --processes worker processes (each its own Django, started
with multiprocessing's spawn), every one of them doing --requests requests as the
project's code would, between Django's request_started and request_finished signals:

- a read, the admin's completions changelist: the estimated count of its paginator
  (dbops.adminsite.kit), a page of 50 rows newest first with their household, member and
  task (select_related), and a profile looked up by email;
- one request in --write-every a write, a member completing a chore: in one transaction,
  the audit actor, the assignment locked and its status flipped (open <-> done), and a
  completion inserted (audit triggers on).

Each client has a household of its own. All clients start together (after two warm-up
requests each) and the phase ends when the last one is done. Two set-ups, alternately,
--rounds times:
  direct:    DB_POOL=true, every process's native psycopg pool with min = max = its number
             of threads, straight to PostgreSQL: about one server connection per client;
  pgbouncer: DB_POOLER=pgbouncer through the cluster's PgBouncer, transaction mode, a pool
             of --pool-size server connections; each thread keeps its own connection to
             PgBouncer (CONN_MAX_AGE).
A thread of this process counts the application role's server connections every 20 ms
(pg_stat_activity, as the superuser) during each phase, warm-up included.

Prints, per set-up, the median over the rounds of requests/s, p50 and p99 latency, the
highest count of server connections, and the ratio of PgBouncer's throughput to the
direct pools' (the median of the rounds' ratios: both sides of one ran in the same round),
and the CPU milliseconds per request of the workers, PostgreSQL and PgBouncer (/proc,
getrusage), which the machine's other load does not change.
Goals: through PgBouncer never more server connections than the pool size while the direct
pools need one per client, and a throughput at least the direct pools'. Exit 1 when a goal
is missed or a request failed, 2 when PgBouncer is not installed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import random
import resource
import signal
import statistics
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import data  # noqa: E402
from bench.data import log  # noqa: E402
from dbops.localdb import LocalCluster  # noqa: E402
from dbops.localdb.errors import LocalDBError  # noqa: E402
from dbops.localdb.pgbouncer import LocalPgBouncer, find_pgbouncer  # noqa: E402
from sqlmigrations.lib import processes  # noqa: E402

PROFILES = 30_000
HOUSEHOLDS = 2_000  # at least one per client
COMPLETIONS = 300_000
MODES = ("direct", "pgbouncer")
WARMUP = 2  # requests per client before the start: a read and a write
APP_ROLE = "choregarden"
CONNECTIONS_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
    "AND datname = %s AND usename = %s"
)
PHASE_TIMEOUT = 600  # seconds: a guard against a hung phase, never a measurement


@dataclass
class Client:
    """What one client works on: its household's first member, task and assignment."""

    household: int
    member: int
    task: int
    assignment: int
    user: str  # the member's profile id, the audit actor


@dataclass
class Phase:
    mode: str
    seconds: float
    reads: list[float] = field(default_factory=list)  # latencies, seconds
    writes: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    peak: int = 0  # server connections of the application role
    cpu: dict[str, float] = field(default_factory=dict)  # seconds, measured part only

    @property
    def requests(self) -> int:
        return len(self.reads) + len(self.writes)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def cpu_ms(self, part: str) -> float:
        """CPU milliseconds per request of the clients, PostgreSQL or PgBouncer."""
        return self.cpu.get(part, 0.0) * 1000 / max(self.requests, 1)

    def percentile_ms(self, q: int, which: str = "all") -> float:
        values = {"all": self.reads + self.writes, "read": self.reads, "write": self.writes}[which]
        if len(values) < 2:
            return values[0] * 1000 if values else 0.0
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


# -- the worker processes ---------------------------------------------------------------


def read_request(rng: random.Random) -> None:
    """The admin's completions changelist: estimated count, a page of rows, a lookup."""
    from accounts.models import UserProfile
    from chores.models import Completion
    from dbops.adminsite.kit import EstimatedCountPaginator, LargeTableAdmin

    queryset = Completion.objects.select_related("household", "member__user", "task").order_by(
        "-id"
    )
    page = EstimatedCountPaginator(queryset, LargeTableAdmin.list_per_page).page(1)
    rows = list(page.object_list)
    assert len(rows) == LargeTableAdmin.list_per_page, len(rows)
    email = f"user{rng.randint(1, PROFILES)}@example.com"
    assert UserProfile.objects.by_email(email).first() is not None, email


def write_request(client: Client) -> None:
    """A member completes a chore: the assignment flips open <-> done, a completion is added."""
    from django.db import transaction

    from chores.audit import set_actor
    from chores.models import Assignment, Completion

    with transaction.atomic():
        set_actor(f"user:{client.user}")
        assignment = Assignment.objects.select_for_update().only("status").get(pk=client.assignment)
        status = "open" if assignment.status == "done" else "done"
        Assignment.objects.filter(pk=client.assignment).update(status=status)
        Completion.objects.create(
            household_id=client.household,
            member_id=client.member,
            task_id=client.task,
            assignment_id=client.assignment,
            points=3,
        )


def cpu_seconds_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def request(work: Any, *args: Any) -> None:
    """Run `work` as a request: Django's request signals around it, as the handler sends."""
    from django.core import signals

    signals.request_started.send(sender=None)
    try:
        work(*args)
    finally:
        signals.request_finished.send(sender=None)


def worker(
    number: int,
    env: dict[str, str],
    clients: list[tuple[int, Client]],
    requests: int,
    write_every: int,
    go: Any,
    messages: Any,
) -> None:
    """One worker process: a Django of its own, a thread per client."""
    processes.die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        os.environ.update(env)
        import django

        django.setup()
        barrier = threading.Barrier(len(clients) + 1)
        results: dict[int, tuple[list[float], list[float], int, str, float]] = {}
        warm_errors: list[str] = []

        def run(index: int, client: Client) -> None:
            rng = random.Random(index)
            try:
                request(read_request, rng)
                request(write_request, client)
            except Exception as err:  # noqa: BLE001 - the process reports it and gives up
                warm_errors.append(f"{type(err).__name__}: {err}")
            barrier.wait()
            go.wait()
            reads: list[float] = []
            writes: list[float] = []
            errors, first = 0, ""
            for k in range(requests):
                write = (k + index) % write_every == 0
                began = time.monotonic()
                try:
                    if write:
                        request(write_request, client)
                    else:
                        request(read_request, rng)
                except Exception as err:  # noqa: BLE001 - counted and reported, never retried
                    errors += 1
                    first = first or f"{type(err).__name__}: {err}"
                    continue
                (writes if write else reads).append(time.monotonic() - began)
            results[index] = (reads, writes, errors, first, time.monotonic())

        threads = [
            threading.Thread(target=run, args=(index, client), daemon=True)
            for index, client in clients
        ]
        for t in threads:
            t.start()
        barrier.wait()
        if warm_errors:
            messages.put(("error", number, f"warm-up failed: {warm_errors[0]}"))
            return
        before = cpu_seconds_self()
        messages.put(("ready", number, None))
        for t in threads:
            t.join()
        messages.put(("done", number, (list(results.values()), cpu_seconds_self() - before)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which stops
        messages.put(("error", number, traceback.format_exc()))


# -- this process -----------------------------------------------------------------------


def prepare(cluster: LocalCluster, clients: int) -> list[Client]:
    """Load the rows; return each client's household, member, task and assignment."""
    households = max(HOUSEHOLDS, clients)
    with data.owner_connection(cluster) as conn:
        started = time.perf_counter()
        with data.audit_off(conn):
            data.load_profiles(conn, max(PROFILES, 3 * households))
            data.load_households(conn, households)
            data.load_completions(conn, COMPLETIONS, households)
            data.load_assignments(conn, households)
        data.finish(conn, started)
        rows = conn.execute(
            """
            SELECT m.household_id, m.id, t.id, a.id, m.user_id::text
            FROM generate_series(1, %s) h
            JOIN household_members m ON m.id = 3 * h - 2
            JOIN tasks t ON t.id = 3 * h - 2
            JOIN LATERAL (SELECT id FROM assignments WHERE task_id = t.id
                          AND status IN ('open', 'done') ORDER BY due_at LIMIT 1) a ON true
            ORDER BY h
            """,
            [clients],
        ).fetchall()
    if len(rows) != clients:
        raise RuntimeError(f"found work for {len(rows)} clients of {clients}")
    return [Client(*row) for row in rows]


def environment(
    cluster: LocalCluster, bouncer: LocalPgBouncer, mode: str, threads: int
) -> dict[str, str]:
    env = {
        **data.environment(cluster),
        "DJANGO_SETTINGS_MODULE": "choregarden.settings",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    if mode == "direct":
        env.update(DB_POOL="true", DB_POOL_MIN_SIZE=str(threads), DB_POOL_MAX_SIZE=str(threads))
    else:
        env.pop("DB_POOL", None)
        env.update(DATABASE_URL=bouncer.url("app"), DB_POOLER="pgbouncer")
    return env


class Monitor:
    """Count the application role's server connections every 20 ms; keep the highest."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def count(self, conn: Any) -> int:
        return int(conn.execute(CONNECTIONS_SQL, [self.cluster.database, APP_ROLE]).fetchone()[0])

    def run(self) -> None:
        import psycopg

        with psycopg.connect(**self.cluster.conninfo("superuser"), autocommit=True) as conn:
            while not self.stop.is_set():
                self.peak = max(self.peak, self.count(conn))
                self.stop.wait(0.02)

    def __enter__(self) -> Monitor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def process_cpu(pid: int, *, reaped: bool = False) -> float:
    """CPU seconds of a process (Linux /proc), with its reaped children's when `reaped`."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # it just exited: its time is in its parent's reaped children's now
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu(cluster: LocalCluster, bouncer: LocalPgBouncer | None) -> dict[str, float]:
    """CPU seconds used so far by PostgreSQL (the postmaster, its live backends and the
    ones it reaped) and by PgBouncer."""
    found = {"PostgreSQL": 0.0, "PgBouncer": 0.0}
    postmaster = cluster.pid()
    if postmaster is not None:
        found["PostgreSQL"] = process_cpu(postmaster, reaped=True)
        for task in Path(f"/proc/{postmaster}/task").iterdir():
            for child in (task / "children").read_text().split():
                found["PostgreSQL"] += process_cpu(int(child))
    pid = bouncer.pid() if bouncer is not None else None
    if pid is not None:
        found["PgBouncer"] = process_cpu(pid)
    return found


def wait_for_no_connections(cluster: LocalCluster) -> None:
    """Wait until the previous phase's server connections are gone (a guard, 60 s)."""
    import psycopg

    deadline = time.monotonic() + 60
    with psycopg.connect(**cluster.conninfo("superuser"), autocommit=True) as conn:
        while True:
            (left,) = conn.execute(CONNECTIONS_SQL, [cluster.database, APP_ROLE]).fetchone()
            if left == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{left} server connections of the last phase are left")
            time.sleep(0.05)


def run_phase(
    cluster: LocalCluster,
    bouncer: LocalPgBouncer,
    mode: str,
    clients: list[Client],
    args: argparse.Namespace,
) -> Phase:
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    messages = context.Queue()
    indexed = list(enumerate(clients))
    shares = [indexed[i :: args.processes] for i in range(args.processes)]
    workers = [
        context.Process(
            target=worker,
            args=(
                number,
                environment(cluster, bouncer, mode, len(share)),
                share,
                args.requests,
                args.write_every,
                go,
                messages,
            ),
            daemon=True,
            name=f"pooler-bench-{mode}-{number}",
        )
        for number, share in enumerate(shares)
        if share
    ]
    phase = Phase(mode, 0.0)
    try:
        with Monitor(cluster) as monitor:
            for p in workers:
                p.start()
            receive(messages, workers, "ready")
            servers = server_cpu(cluster, bouncer if mode == "pgbouncer" else None)
            started = time.monotonic()
            go.set()
            ends = []
            phase.cpu["clients"] = 0.0
            for found, cpu in receive(messages, workers, "done"):
                phase.cpu["clients"] += cpu
                for reads, writes, errors, first, end in found:
                    phase.reads += reads
                    phase.writes += writes
                    phase.errors += errors
                    phase.first_error = phase.first_error or first
                    ends.append(end)
            phase.seconds = max(ends) - started
            for part, seconds in server_cpu(
                cluster, bouncer if mode == "pgbouncer" else None
            ).items():
                phase.cpu[part] = seconds - servers[part]
            for p in workers:
                p.join(PHASE_TIMEOUT)
        phase.peak = monitor.peak
    finally:
        for p in workers:
            if p.is_alive():
                p.kill()
                p.join()
        messages.close()
    return phase


def receive(messages: Any, workers: list[Any], kind: str) -> list[Any]:
    """One `kind` message from every worker; a worker's error or death ends the phase."""
    found: list[Any] = []
    deadline = time.monotonic() + PHASE_TIMEOUT
    while len(found) < len(workers):
        try:
            what, number, payload = messages.get(timeout=0.5)
        except queue.Empty:
            dead = [p.name for p in workers if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"worker {dead[0]} died") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"no '{kind}' from every worker in {PHASE_TIMEOUT} s") from None
            continue
        if what == "error":
            raise RuntimeError(f"worker {number}: {payload}")
        if what != kind:
            raise RuntimeError(f"worker {number} sent {what!r}, expected {kind!r}")
        found.append(payload)
    return found


def report(phases: dict[str, list[Phase]], args: argparse.Namespace) -> int:
    rounds = len(phases["direct"])
    ratios = [b.rate / a.rate for a, b in zip(phases["direct"], phases["pgbouncer"], strict=True)]
    ratio = statistics.median(ratios)
    peaks = {mode: max(p.peak for p in found) for mode, found in phases.items()}
    errors = {mode: sum(p.errors for p in found) for mode, found in phases.items()}
    print()
    print(
        f"{args.clients} clients ({args.processes} processes x threads), {args.requests} "
        f"requests each (1 in {args.write_every} a write), median of {rounds} rounds; "
        f"PgBouncer {find_pgbouncer()} transaction mode, pool of {args.pool_size}"
    )
    print(
        f"{'set-up':<42} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'read p50':>8} "
        f"{'write p50':>9} {'peak conns':>10} {'errors':>6} {'vs direct':>9}"
    )
    labels = {
        "direct": "(a) native pools direct to PostgreSQL",
        "pgbouncer": f"(b) through PgBouncer, pool of {args.pool_size}",
    }
    for mode in MODES:
        found = phases[mode]

        def median(figure: Any, found: list[Phase] = found) -> float:
            return statistics.median(figure(p) for p in found)

        versus = f"{ratio:8.2f}x" if mode == "pgbouncer" else f"{1:8.2f}x"
        print(
            f"{labels[mode]:<42} {median(lambda p: p.rate):>7.1f} "
            f"{median(lambda p: p.percentile_ms(50)):>7.0f} "
            f"{median(lambda p: p.percentile_ms(99)):>7.0f} "
            f"{median(lambda p: p.percentile_ms(50, 'read')):>8.0f} "
            f"{median(lambda p: p.percentile_ms(50, 'write')):>9.0f} "
            f"{peaks[mode]:>10} {errors[mode]:>6} {versus:>9}"
        )
    print()
    print("CPU ms per request (this machine's other load does not count)")
    print(f"{'set-up':<42} {'clients':>8} {'PostgreSQL':>10} {'PgBouncer':>9} {'total':>7}")
    for mode in MODES:
        parts = {
            part: statistics.median(p.cpu_ms(part) for p in phases[mode])
            for part in ("clients", "PostgreSQL", "PgBouncer")
        }
        print(
            f"{labels[mode]:<42} {parts['clients']:>8.2f} {parts['PostgreSQL']:>10.2f} "
            f"{parts['PgBouncer']:>9.2f} {sum(parts.values()):>7.2f}"
        )
    print()
    print("rounds (req/s, peak server connections):")
    for i, (a, b) in enumerate(zip(phases["direct"], phases["pgbouncer"], strict=True), 1):
        print(
            f"  {i}: direct {a.rate:6.1f} ({a.peak:>3}), pgbouncer {b.rate:6.1f} ({b.peak:>3}), "
            f"{b.rate / a.rate:.2f}x"
        )
    bounded = peaks["pgbouncer"] <= args.pool_size
    fast = ratio >= 1.0
    print()
    print(
        f"server connections through PgBouncer <= pool size ({args.pool_size}): "
        f"{peaks['pgbouncer']} ({'meets' if bounded else 'MISSES'})"
    )
    print(f"(a) needs one per client: peak {peaks['direct']} of {args.clients}")
    print(f"throughput (b)/(a) >= 1.0: {ratio:.2f} ({'meets' if fast else 'MISSES'})")
    for mode in MODES:
        if errors[mode]:
            first = next(p.first_error for p in phases[mode] if p.first_error)
            print(f"{mode}: {errors[mode]} requests failed, e.g. {first}")
    return 0 if bounded and fast and not any(errors.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20, help="Requests per client.")
    parser.add_argument("--pool-size", type=int, default=20, help="PgBouncer's server pool.")
    parser.add_argument("--processes", type=int, default=4, help="Worker processes.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-every", type=int, default=5, help="1 request in N writes.")
    args = parser.parse_args(argv)
    if min(args.clients, args.requests, args.pool_size, args.processes, args.rounds) < 1:
        parser.error("every count must be at least 1")
    if args.write_every < 1:
        parser.error("--write-every must be at least 1")
    args.processes = min(args.processes, args.clients)
    try:
        find_pgbouncer()
    except LocalDBError as err:
        print(err, file=sys.stderr)
        return 2

    phases: dict[str, list[Phase]] = {mode: [] for mode in MODES}
    with data.migrated_cluster(None, "choregarden-poolerbench-") as cluster:
        clients = prepare(cluster, args.clients)
        bouncer = LocalPgBouncer(cluster, pool_size=args.pool_size)
        try:
            for round_ in range(1, args.rounds + 1):
                order = MODES if round_ % 2 else MODES[::-1]
                for mode in order:
                    wait_for_no_connections(cluster)
                    if mode == "pgbouncer":
                        bouncer.start()
                    try:
                        phase = run_phase(cluster, bouncer, mode, clients, args)
                    finally:
                        bouncer.stop()
                    phases[mode].append(phase)
                    log(
                        f"round {round_}: {mode:<9} {phase.rate:7.1f} req/s, p50 "
                        f"{phase.percentile_ms(50):.0f} ms, p99 {phase.percentile_ms(99):.0f} ms,"
                        f" peak {phase.peak} server connections, {phase.errors} errors"
                    )
        finally:
            bouncer.stop()
    return report(phases, args)


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # the workers, PgBouncer and the cluster are gone by now
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
