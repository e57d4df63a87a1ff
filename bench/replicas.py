"""Several `georgebot run` processes (replicas) on one PostgreSQL database and one Slack.

    .venv/bin/python bench/replicas.py [--throughput-jobs 200] [--capacity 1] [--lease 5]
        [--jobs 6000] [--chaos-capacity 4] [--only throughput|failover|chaos] [--check]

Real processes (GEORGE_SANDBOX=off), each scenario on a PostgreSQL database of its own,
created and dropped here; the local Slack runs in this process and every replica connects to
it (Socket Mode, the Web API). The jobs come from a Git repository, all in one manifest file
(GEORGE_LIMIT_* raised if it outgrows the defaults) committed once every replica is up. A
step is a shell tool that appends $GEORGE_ATTEMPT to "$GEORGE_OUTPUT_DIR/<step>" and sleeps.
Times are read from the database: from the first step starting to the last one finishing.

1. Throughput: `--throughput-jobs` jobs x 5 chained steps of a 50 ms sleep, run by 1, 2 and 3
   replicas in turn, each running at most `--capacity` steps at once (GEORGE_MAX_CONCURRENT_
   STEPS, default 1): low so that one replica's capacity, not the machine's CPU, bounds the
   rate (a replica spends some 30 ms of CPU on a step, more as replicas are added, and
   PostgreSQL some 7 ms: on 2 cores, more capacity makes every row CPU-bound). The CPU used
   meanwhile is shown, so a row the cores bound says so. Targets: >= 1.8x the rate of one
   replica at 2, >= 2.5x at 3; every job one card.
2. Failover: 3 replicas of capacity 4, 6 one-step jobs of a 5 s sleep; once all run, SIGKILL of
   the replica running the most of them, then the time from the kill until each of its steps
   starts again on another replica (GEORGE_LEASE_SECONDS=`--lease`, default 5). Target: < lease
   + 2 s, in each of `--failover-trials` trials.
3. Chaos: 3 replicas of capacity `--chaos-capacity` (default 4), `--jobs` jobs x 5 chained steps
   of a 50 ms sleep, a random replica SIGKILLed every 10-20 s and started again at once, until
   every job has succeeded. Checks: no step ran again after it succeeded (its file has no more
   lines than attempts, a second attempt only with a 'Recovered' event, no attempt after its
   success; no step recovered from a replica that was not killed), one run per job, one card
   per job; and the same workload's time on one replica without kills, for comparison. A
   replica killed between Slack accepting a message and George recording it can post that one
   message twice (Slack takes no idempotency key): the figures say what was seen.

Prints the figures and exits 0; with `--check`, exits 1 if a target is missed or a check fails.
`--keep` keeps each scenario's files (replica logs) and database to look at afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import finish, table, verdict  # noqa: I001  (bench/ is on the path when a script runs)
from georgebot.devslack import LocalSlack
from georgebot.manifests.limits import DEFAULT as LIMITS, env_name

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHANNEL = "C0GEORGE"  # the local Slack's #george, where cards go
STEPS = 5
SHORT, LONG = 0.05, 5.0  # seconds a step's tool sleeps: the work, and the failover's
FAILOVER_JOBS, FAILOVER_CAPACITY = 6, 4  # 3 replicas: the survivors always have room for the victim's
TARGET_2, TARGET_3 = 1.8, 2.5
FAILOVER_SLACK = 2.0  # seconds beyond the lease
KILL_EVERY = (10.0, 20.0)
CARDS_WITHIN = 300.0  # seconds after the last job for the last card to be posted

# Each attempt leaves a line before it sleeps, so a step that ran twice shows it.
TOOL = '#!/bin/sh\necho "$GEORGE_ATTEMPT" >> "$GEORGE_OUTPUT_DIR/$1"\nsleep "$2"\n'


def base_manifests(steps: int, sleep: float) -> str:
    chain = "".join(
        f"    - {{name: s{k}, agent: worker, run: [tools/work, s{k}, '{sleep}']"
        + (f", needs: [s{k - 1}]" if k else "") + "}\n"
        for k in range(steps)
    )
    # The agent's cap counts across replicas: far above theirs, so only theirs binds.
    return (
        "apiVersion: george/v1\nkind: AgentSpec\nmetadata: {name: worker}\nspec:\n"
        "  capabilities: [{shell: {commands: [tools/work]}}]\n  maxConcurrentSteps: 10000\n"
        f"---\napiVersion: george/v1\nkind: TaskTemplate\nmetadata: {{name: work}}\nspec:\n  steps:\n{chain}"
    )


def job_manifests(names: list[str]) -> str:
    return "".join(
        f"---\napiVersion: george/v1\nkind: Job\nmetadata: {{name: {n}}}\nspec: {{template: work}}\n"
        for n in names
    )


def limits_for(text: str) -> dict[str, str]:
    """GEORGE_LIMIT_* raised where one file of `text` would exceed George's defaults."""
    raised = {}
    if len(text.encode()) > LIMITS.file_bytes:
        raised[env_name("file_bytes")] = str(2 * len(text.encode()))
    if (documents := text.count("\n---\n") + 1) > LIMITS.documents:
        raised[env_name("documents")] = str(2 * documents)
    return raised


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.com", *args],
                   cwd=repo, check=True, capture_output=True)


def make_repo(repo: Path, sleep: float, steps: int) -> None:
    (repo / "manifests").mkdir(parents=True)
    (repo / "tools").mkdir()
    (repo / "manifests" / "base.yaml").write_text(base_manifests(steps, sleep))
    (repo / "tools" / "work").write_text(TOOL)
    (repo / "tools" / "work").chmod(0o755)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "agent and template")


def commit_jobs(repo: Path, text: str) -> None:
    (repo / "manifests" / "jobs.yaml").write_text(text)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "jobs")


def utcnow() -> datetime:
    """As the database holds times: UTC, naive."""
    return datetime.now(UTC).replace(tzinfo=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TICK = os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) over every core since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def process_seconds(pid: int) -> float:
    """User and system time of a process and of its children it has reaped (0 once gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in stat[11:15]) / TICK


def descendants(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *(d for c in children for d in descendants(int(c)))]


@dataclass(frozen=True)
class Cpu:
    """CPU seconds so far: the replicas (and their watchdogs and tools), the PostgreSQL
    backends serving this scenario's database, this process (the local Slack), the machine."""

    george: dict[int, float]
    postgres: dict[int, float]
    bench: float
    machine: tuple[int, int]

    def since(self, earlier: Cpu) -> dict[str, float]:
        def grown(now: dict[int, float], then: dict[int, float]) -> float:
            return sum(v - then.get(pid, 0.0) for pid, v in now.items())

        busy, total = (a - b for a, b in zip(self.machine, earlier.machine, strict=True))
        ours = {
            "george": grown(self.george, earlier.george),
            "postgres": grown(self.postgres, earlier.postgres),
            "bench": self.bench - earlier.bench,
        }
        # Whatever else kept the cores busy: other programs on the machine, PostgreSQL's own
        # background processes, tools whose CPU no live process reaped.
        return {**ours, "busy": busy / max(1, total), "others": busy / TICK - sum(ours.values())}


class Database:
    """A PostgreSQL database of its own for one scenario: created on the server, dropped after
    (its NOTIFY channel is its own too, so scenarios never hear each other)."""

    def __init__(self, server: str) -> None:
        self.name = f"george_bench_{uuid.uuid4().hex[:10]}"
        self._admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        self.url = sa.engine.make_url(server).set(database=self.name).render_as_string(hide_password=False)
        self.engine = sa.create_engine(self.url, pool_size=2)

    def _rows(self, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query), params)]

    async def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        """Off the event loop, which serves the local Slack meanwhile."""
        return await asyncio.to_thread(self._rows, query, params)

    async def value(self, query: str, **params: Any) -> Any:
        rows = await self.rows(query, **params)
        return rows[0][0] if rows else None

    def drop(self) -> None:
        self.engine.dispose()
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Replicas:
    """The `georgebot run` processes of one scenario: started, SIGKILLed, stopped."""

    env: dict[str, str]
    work: Path
    profile: Path | None = None  # where each replica writes its cProfile, if anywhere
    live: list[Replica] = field(default_factory=list)
    started: list[Replica] = field(default_factory=list)

    def start(self) -> Replica:
        log = self.work / f"george-{len(self.started)}.log"
        profiled = []
        if self.profile is not None:
            self.profile.mkdir(parents=True, exist_ok=True)
            profiled = ["-m", "cProfile", "-o", str(self.profile / f"{log.stem}.prof")]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *profiled, "-m", "georgebot", "run"], cwd=self.work,
                stdout=subprocess.DEVNULL, stderr=out, env={**self.env, "PORT": str(free_port())},
            )
        replica = Replica(process, log)
        self.live.append(replica)
        self.started.append(replica)
        return replica

    async def kill(self, replica: Replica) -> datetime:
        """SIGKILL; returns when it was sent."""
        at = utcnow()
        replica.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(replica.process.wait, 10)
        self.live.remove(replica)
        return at

    async def stop(self) -> None:
        for replica in self.live:
            replica.process.send_signal(signal.SIGTERM)
        for replica in self.live:
            try:
                await asyncio.to_thread(replica.process.wait, 30)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                await asyncio.to_thread(replica.process.wait)
        self.live.clear()

    def tracebacks(self) -> list[str]:
        """The first traceback of each log that has one."""
        found = []
        for replica in self.started:
            text = replica.log.read_text(errors="replace")
            if "Traceback" in text:
                at = text.index("Traceback")
                found.append(f"{replica.log.name}: {text[max(0, at - 300):at + 2500]}")
        return found


class Stuck(Exception):
    """A scenario did not reach a state in time: George may have a bug; the message says where."""


async def until(check: Callable[[], Awaitable[object]], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise Stuck(f"not {what} within {within:.0f} s")
        await asyncio.sleep(0.1)


def card_counts(slack: LocalSlack, names: set[str]) -> Counter[str]:
    """Top-level messages in #george per job: a card's text is "<job>: <status> — …"."""
    counts: Counter[str] = Counter()
    for message in slack.messages(CHANNEL):
        name = (message.text or "").partition(": ")[0]
        if name in names:
            counts[name] += 1
    return counts


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Run:
    """One scenario's processes, database and local Slack."""

    db: Database
    slack: LocalSlack
    replicas: Replicas
    repo: Path
    home: Path
    names: list[str]
    cpu: Cpu | None = None  # when the jobs were committed

    async def ready(self, count: int) -> None:
        """Every replica connected to Slack and recorded, and both leases held."""
        await until(lambda: _true(self.slack.connections >= count), f"{count} Socket Mode connections", 120)

        async def recorded() -> bool:
            pids = {r.pid for r in self.replicas.live}
            found = {p for (p,) in await self.db.rows("SELECT pid FROM replicas")}
            return pids <= found

        await until(recorded, "every replica recorded", 60)
        await until(lambda: self.leases_held(), "the sync and outbox leases held", 60)

    async def leases_held(self) -> bool:
        held = await self.db.rows("SELECT name FROM leases WHERE expires_at > :now", now=utcnow())
        names = {n for (n,) in held}
        return "sync" in names and any(n.startswith("outbox:") for n in names)

    async def commit(self) -> None:
        """The jobs, in one file; the leader's next Git poll picks them up."""
        text = job_manifests(self.names)
        await asyncio.to_thread(commit_jobs, self.repo, text)
        self.cpu = await self.cpu_now()
        within = 120 + len(self.names) / 20

        async def created() -> bool:
            return bool(await self.db.value("SELECT count(*) FROM job_runs") == len(self.names))

        await until(created, f"all {len(self.names)} job runs created", within)

    async def succeeded(self) -> int:
        return int(await self.db.value("SELECT count(*) FROM job_runs WHERE status = 'Succeeded'"))

    async def finish(self, within: float, label: str) -> dict[str, float]:
        """Waits until every job has succeeded (progress on stderr every 30 s); the CPU used
        since the jobs were committed."""
        deadline = time.monotonic() + within
        said = time.monotonic()
        while (done := await self.succeeded()) < len(self.names):
            if time.monotonic() > deadline:
                raise Stuck(f"{label}: {done} of {len(self.names)} jobs succeeded after {within:.0f} s; "
                            f"steps by status: {await self.statuses()}")
            if time.monotonic() - said > 30:
                said = time.monotonic()
                progress(f"  {label}: {done} of {len(self.names)} jobs succeeded")
            await asyncio.sleep(0.5)
        assert self.cpu is not None
        return (await self.cpu_now()).since(self.cpu)

    async def cpu_now(self) -> Cpu:
        backends = await self.db.rows(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        times = os.times()
        return Cpu(
            george={p: process_seconds(p) for r in self.replicas.live for p in descendants(r.pid)},
            postgres={p: process_seconds(p) for (p,) in backends},
            bench=times.user + times.system,
            machine=machine_jiffies(),
        )

    async def statuses(self) -> dict[str, int]:
        return dict(await self.db.rows("SELECT status, count(*) FROM step_runs GROUP BY status"))

    async def span(self) -> float:
        """Seconds from the first step starting (its first attempt) to the last one finishing."""
        first = await self.db.value(
            "SELECT min(at) FROM events WHERE step IS NOT NULL AND to_status = 'Running'")
        last = await self.db.value("SELECT max(finished_at) FROM step_runs")
        return float((last - first).total_seconds())

    async def replica_id(self, replica: Replica) -> str | None:
        found = await self.db.value("SELECT id FROM replicas WHERE pid = :pid", pid=replica.pid)
        return None if found is None else str(found)


async def _true(value: bool) -> bool:
    return value


@contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="george-bench-"))
        progress(f"  files kept in {path}")
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="george-bench-") as tmp:
            yield Path(tmp)


@dataclass
class Options:
    server: str
    lease: float
    keep: bool
    profile: Path | None


async def scenario(
    label: str, opts: Options, capacity: int, jobs: int, count: int, sleep: float, steps: int,
    body: Callable[[Run], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Sets up a database, a repository, a local Slack and `count` replicas; runs `body`;
    stops the replicas and drops the database (kept with `--keep`, for a look after a failure)."""
    names = [f"job-{i:05d}" for i in range(jobs)]
    db = Database(opts.server)
    try:
        with workdir(opts.keep) as work:
            repo, home = work / "ops", work / "home"
            make_repo(repo, sleep, steps)
            async with LocalSlack(port=0) as slack:
                env = {k: v for k, v in os.environ.items()
                       if not k.startswith(("SLACK_", "GEORGE_", "ANTHROPIC_"))}
                env |= {
                    "GEORGE_REPO": str(repo), "GEORGE_DATABASE_URL": db.url, "GEORGE_HOME": str(home),
                    "GEORGE_SANDBOX": "off", "GEORGE_LEASE_SECONDS": f"{opts.lease:g}",
                    "GEORGE_MAX_CONCURRENT_STEPS": str(capacity), "GEORGE_GIT_POLL_SECONDS": "2",
                    "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token,
                    "SLACK_API_URL": slack.api_url,
                    **limits_for(job_manifests(names)),
                }
                profile = opts.profile / f"{label}-{db.name}" if opts.profile else None
                replicas = Replicas(env, work, profile)
                run = Run(db, slack, replicas, repo, home, names)
                try:
                    # One first, so the migrations are behind it when the others start.
                    replicas.start()
                    await until(lambda: run.db.value(
                        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'leases'"),
                        "the schema migrated", 120)
                    for _ in range(count - 1):
                        replicas.start()
                    await run.ready(count)
                    await run.commit()
                    result = await body(run)
                finally:
                    await replicas.stop()
                result["tracebacks"] = replicas.tracebacks()
                return result
    finally:
        if opts.keep:
            progress(f"  database {db.name} kept")
            db.engine.dispose()
        else:
            db.drop()


# --- 1. throughput ---------------------------------------------------------------------------


async def throughput(opts: Options, capacity: int, jobs: int, count: int) -> dict[str, Any]:
    async def body(run: Run) -> dict[str, Any]:
        cpu = await run.finish(120 + jobs * STEPS * 0.5, f"throughput, {count} replica(s)")
        span = await run.span()
        return {"span": span, "cpu": cpu, "cards": await all_cards(run)}

    return await scenario(f"throughput-{count}", opts, capacity, jobs, count, SHORT, STEPS, body)


# --- 2. failover -----------------------------------------------------------------------------


async def failover(opts: Options) -> dict[str, Any]:
    async def body(run: Run) -> dict[str, Any]:
        async def all_running() -> bool:
            return bool(await run.db.value(
                "SELECT count(*) FROM step_runs WHERE status = 'Running'") == FAILOVER_JOBS)

        await until(all_running, "every step running", 60)
        owners = Counter(o for (o,) in await run.db.rows(
            "SELECT lease_owner FROM step_runs WHERE status = 'Running'"))
        held = dict(await run.db.rows(
            "SELECT holder, name FROM leases WHERE expires_at > :now", now=utcnow()))
        ids = {r.pid: await run.replica_id(r) for r in run.replicas.live}
        victim = max(run.replicas.live, key=lambda r: owners.get(ids[r.pid], 0))
        victim_id = ids[victim.pid]
        steps = await run.db.rows(
            "SELECT id, attempts FROM step_runs WHERE status = 'Running' AND lease_owner = :o", o=victim_id)
        led = sorted(name.split(":")[0] for holder, name in held.items() if holder == victim_id)
        killed_at = await run.replicas.kill(victim)

        async def recovered() -> bool:
            again = await run.db.rows(
                "SELECT count(*) FROM step_runs WHERE id = ANY(:ids) AND attempts > 1 "
                "AND lease_owner IS DISTINCT FROM :o", ids=[s for s, _ in steps], o=victim_id)
            return bool(again[0][0] == len(steps))

        await until(recovered, "the killed replica's steps running elsewhere", 60)
        back = await run.db.rows(
            "SELECT s.id, s.started_at, (SELECT min(e.at) FROM events e WHERE e.job_id = s.job_id "
            "AND e.step = s.name AND e.reason = 'Recovered') FROM step_runs s WHERE s.id = ANY(:ids)",
            ids=[s for s, _ in steps])
        await run.finish(120, "failover")
        return {
            "killed": len(steps),
            "led": led,
            "started": [(started - killed_at).total_seconds() for _, started, _ in back],
            "event": [(at - killed_at).total_seconds() for _, _, at in back if at is not None],
            "others": len(run.replicas.live),
        }

    return await scenario("failover", opts, FAILOVER_CAPACITY, FAILOVER_JOBS, 3, LONG, 1, body)


# --- 3. chaos --------------------------------------------------------------------------------


@dataclass
class Kill:
    at: datetime
    steps: set[int]  # the steps its leases held when it died
    led: list[str]


async def chaos(opts: Options, capacity: int, jobs: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)

    async def body(run: Run) -> dict[str, Any]:
        kills: list[Kill] = []
        done = asyncio.Event()

        async def killer() -> None:
            while not done.is_set():
                try:
                    await asyncio.wait_for(done.wait(), rng.uniform(*KILL_EVERY))
                    return
                except TimeoutError:
                    pass
                victim = rng.choice(run.replicas.live)
                victim_id = await run.replica_id(victim)
                at = await run.replicas.kill(victim)
                run.replicas.start()  # at once, as a supervisor would
                # Read after its death, so exact: it claims nothing more, and no lease it held
                # lapses within these milliseconds.
                steps = {i for (i,) in await run.db.rows(
                    "SELECT id FROM step_runs WHERE status = 'Running' AND lease_owner = :o", o=victim_id)}
                led = [n.split(":")[0] for (n,) in await run.db.rows(
                    "SELECT name FROM leases WHERE holder = :o AND expires_at > :now", o=victim_id, now=at)]
                kills.append(Kill(at, steps, sorted(led)))

        killing = asyncio.create_task(killer(), name="bench-killer")
        try:
            await run.finish(600 + jobs * STEPS * 0.5, "chaos")
        finally:
            done.set()
            await killing
        span = await run.span()
        await run.ready(len(run.replicas.live))  # the last restarted replica is up: its outbox may lead
        cards = await all_cards(run)
        orphaned = set().union(*(k.steps for k in kills))
        return {"span": span, "kills": kills, "cards": cards, **await audit(run, orphaned)}

    return await scenario("chaos", opts, capacity, jobs, 3, SHORT, STEPS, body)


async def all_cards(run: Run) -> Counter[str]:
    """Waits until every job's card is in Slack and the outbox is empty; the cards per job."""
    names = set(run.names)

    async def posted() -> bool:
        undelivered = await run.db.value("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
        return undelivered == 0 and len(card_counts(run.slack, names)) == len(names)

    try:
        await until(posted, "every card posted", CARDS_WITHIN)
    except Stuck as e:
        progress(f"  {e}")
    return card_counts(run.slack, names)


async def audit(run: Run, orphaned: set[int]) -> dict[str, Any]:
    """What the database and the steps' files say about attempts, after every job succeeded;
    `orphaned`: the steps killed replicas held."""
    steps = await run.db.rows(
        "SELECT j.name, s.name, s.attempts, s.status FROM step_runs s JOIN job_runs j ON j.id = s.job_id")
    recovered_ids = {i for (i,) in await run.db.rows(
        "SELECT DISTINCT s.id FROM events e JOIN step_runs s ON s.job_id = e.job_id AND s.name = e.step "
        "WHERE e.reason = 'Recovered'")}
    recovered = {(j, s) for j, s in await run.db.rows(
        "SELECT DISTINCT job, step FROM events WHERE reason = 'Recovered' AND step IS NOT NULL")}
    # An attempt begun after the step's success: a Running event later than its Succeeded one.
    after_success = await run.db.value(
        "SELECT count(*) FROM (SELECT job, step FROM events WHERE step IS NOT NULL GROUP BY job, step "
        "HAVING max(at) FILTER (WHERE to_status = 'Running') "
        "> min(at) FILTER (WHERE to_status = 'Succeeded')) x")
    more_lines = fewer_lines = unexplained = 0
    for job, step, attempts, _ in steps:
        path = run.home / "outputs" / job / step
        lines = len(path.read_text().split()) if path.exists() else 0
        more_lines += lines > attempts
        fewer_lines += lines < attempts  # an attempt claimed, killed before its tool began: no rerun
        unexplained += attempts > 1 and (job, step) not in recovered
    runs = await run.db.rows("SELECT name, count(*) FROM job_runs GROUP BY name HAVING count(*) > 1")
    return {
        "steps": len(steps),
        "succeeded_steps": sum(status == "Succeeded" for *_, status in steps),
        "attempts": sum(a for _, _, a, _ in steps),
        "recovered_steps": len(recovered),
        # A lease that lapsed while its George lived: the step ran on two replicas at once.
        "recovered_from_the_living": len(recovered_ids - orphaned),
        "more_lines": more_lines,
        "fewer_lines": fewer_lines,
        "unexplained": unexplained,
        "after_success": int(after_success or 0),
        "duplicate_runs": len(runs),
    }


# --- report ----------------------------------------------------------------------------------


def extra_cards(jobs: int, cards: Counter[str]) -> int:
    """Cards beyond one per job, and jobs without one."""
    return sum(n - 1 for n in cards.values()) + jobs - len(cards)


def at_once(capacity: int) -> str:
    return f"{capacity} step{'' if capacity == 1 else 's'} at once"


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def report_throughput(jobs: int, capacity: int, results: dict[int, dict[str, Any]],
                      missed: list[str]) -> None:
    total = jobs * STEPS
    print(f"\n1. throughput: {jobs} jobs x {STEPS} chained steps of a {SHORT * 1000:.0f} ms sleep "
          f"({total} steps), {at_once(capacity)} per replica; a fresh database per row")
    rows: list[tuple[str, ...]] = [("replicas", "time", "steps/s", "speed-up", "target", "", "machine busy",
             "George CPU", "PostgreSQL CPU", "bench CPU", "other CPU", "extra cards")]
    base = total / results[1]["span"]
    for count, result in sorted(results.items()):
        rate, cpu = total / result["span"], result["cpu"]
        extra = extra_cards(jobs, result["cards"])
        if extra:
            missed.append(f"throughput at {count} replicas: {extra} cards beyond one per job")
        target = {2: TARGET_2, 3: TARGET_3}.get(count)
        ok = target is None or rate / base >= target
        if not ok:
            missed.append(f"throughput at {count} replicas {rate / base:.2f}x < {target}x")
        rows.append((str(count), seconds(result["span"]), f"{rate:.1f}", f"{rate / base:.2f}x",
                     f">= {target}x" if target else "", verdict(ok) if target else "",
                     f"{cpu['busy'] * 100:.0f}%", seconds(cpu["george"]), seconds(cpu["postgres"]),
                     seconds(cpu["bench"]), seconds(cpu["others"]), str(extra)))
    table(rows)
    print(f"   time: the first step's start to the last step's end. Were George's own work free, a replica "
          f"would run {capacity / SHORT:.0f} steps/s ({capacity} / {SHORT:g} s).")
    print("   CPU, from the commit of the jobs to the last success: the machine's cores busy (every "
          "process on it), and CPU seconds of the replicas (with their tools), of the PostgreSQL "
          "backends of the scenario's database, of this process (the local Slack) and of the "
          "rest")


def report_failover(trials: list[dict[str, Any]], lease: float, missed: list[str]) -> None:
    limit = lease + FAILOVER_SLACK
    print(f"\n2. failover: 3 replicas, {FAILOVER_CAPACITY} steps at once each, {FAILOVER_JOBS} one-step jobs "
          f"of a {LONG:g} s sleep; SIGKILL of the replica running the most; GEORGE_LEASE_SECONDS={lease:g}")
    rows: list[tuple[str, ...]] = [
        ("trial", "its steps", "it led", "first back", "last back", "'Recovered' logged", "target", "")
    ]
    for n, trial in enumerate(trials, 1):
        last = max(trial["started"])
        ok = last < limit
        if not ok:
            missed.append(f"failover trial {n}: a step started again {last:.1f} s after the kill")
        rows.append((str(n), str(trial["killed"]), ",".join(trial["led"]) or "nothing",
                     seconds(min(trial["started"])), seconds(last),
                     f"{len(trial['event'])} steps, last {seconds(max(trial['event'], default=0))}",
                     f"< {seconds(limit)}", verdict(ok)))
    table(rows)
    print("   back: the kill to the recovered attempt's start on another replica (step_runs.started_at)")


def report_chaos(jobs: int, capacity: int, result: dict[str, Any], single: dict[str, Any] | None,
                 missed: list[str]) -> None:
    kills: list[Kill] = result["kills"]
    cards: Counter[str] = result["cards"]
    led = Counter(name for k in kills for name in k.led)
    print(f"\n3. chaos: 3 replicas, {jobs} jobs x {STEPS} chained steps of a {SHORT * 1000:.0f} ms sleep "
          f"({jobs * STEPS} steps), {at_once(capacity)} per replica; a replica SIGKILLed every "
          f"{KILL_EVERY[0]:g}-{KILL_EVERY[1]:g} s, started again at once")
    rows: list[tuple[str, ...]] = [("", "seen", "target", "")]
    figures = [
        ("time, 3 replicas with kills", seconds(result["span"])),
        ("time, 1 replica, no kills", seconds(single["span"]) if single else "not run"),
        ("SIGKILLs", str(len(kills))),
        ("  steps running in the killed replicas", str(sum(len(k.steps) for k in kills))),
        ("  killed while leading the Git sync", str(led["sync"])),
        ("  killed while leading the outbox", str(led["outbox"])),
        ("steps succeeded", f"{result['succeeded_steps']} of {jobs * STEPS}"),
        ("attempts", str(result["attempts"])),
        ("steps with a 'Recovered' event", str(result["recovered_steps"])),
        ("attempts claimed but killed before the tool began", str(result["fewer_lines"])),
    ]
    rows += [(label, value, "", "") for label, value in figures]
    checks = [
        ("steps whose file has more lines than attempts", result["more_lines"]),
        ("steps tried again without a 'Recovered' event", result["unexplained"]),
        ("steps 'Recovered' that no killed replica held", result["recovered_from_the_living"]),
        ("steps started again after their success", result["after_success"]),
        ("jobs with more than one run", result["duplicate_runs"]),
        ("duplicate cards", sum(n - 1 for n in cards.values() if n > 1)),
        ("jobs without a card", jobs - len(cards)),
    ]
    for label, count in checks:
        ok = count == 0
        if not ok:
            missed.append(f"chaos: {count} {label}")
        rows.append((label, str(count), "0", verdict(ok)))
    table(rows)
    print("   time: the first step's start to the last step's end")


def report_tracebacks(label: str, tracebacks: list[str], missed: list[str]) -> None:
    if tracebacks:
        missed.append(f"{label}: {len(tracebacks)} replica log(s) with a traceback")
        for text in tracebacks:
            print(f"--- {label}: {text}", file=sys.stderr)


async def main_async(args: argparse.Namespace) -> list[str]:
    opts = Options(args.server, args.lease, args.keep, args.profile)
    scenarios = args.only or ["throughput", "failover", "chaos"]
    missed: list[str] = []
    print(f"replicas.py: `georgebot run` processes on one PostgreSQL database, {os.cpu_count()} cores; "
          "a replica's capacity is its GEORGE_MAX_CONCURRENT_STEPS", flush=True)
    if "throughput" in scenarios:
        results = {}
        for count in (1, 2, 3):
            progress(f"throughput: {count} replica(s)")
            results[count] = await throughput(opts, args.capacity, args.throughput_jobs, count)
            report_tracebacks(f"throughput {count}", results[count]["tracebacks"], missed)
        report_throughput(args.throughput_jobs, args.capacity, results, missed)
    if "failover" in scenarios:
        trials = []
        for n in range(args.failover_trials):
            progress(f"failover: trial {n + 1}")
            trials.append(await failover(opts))
            report_tracebacks(f"failover {n + 1}", trials[-1]["tracebacks"], missed)
        report_failover(trials, opts.lease, missed)
    if "chaos" in scenarios:
        progress(f"chaos: 3 replicas, {args.jobs} jobs")
        result = await chaos(opts, args.chaos_capacity, args.jobs, args.seed)
        report_tracebacks("chaos", result["tracebacks"], missed)
        single = None
        if not args.no_single:
            progress(f"chaos comparison: 1 replica, {args.jobs} jobs")
            single = await throughput(opts, args.chaos_capacity, args.jobs, 1)
            report_tracebacks("chaos comparison", single["tracebacks"], missed)
        report_chaos(args.jobs, args.chaos_capacity, result, single, missed)
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=6000, help="jobs of the chaos run (x 5 steps)")
    parser.add_argument("--throughput-jobs", type=int, default=200, help="jobs of each throughput run")
    parser.add_argument("--capacity", type=int, default=1,
                        help="GEORGE_MAX_CONCURRENT_STEPS of each replica in the throughput runs")
    parser.add_argument("--chaos-capacity", type=int, default=4,
                        help="GEORGE_MAX_CONCURRENT_STEPS of each replica in the chaos runs")
    parser.add_argument("--lease", type=float, default=5.0, help="GEORGE_LEASE_SECONDS")
    parser.add_argument("--failover-trials", type=int, default=3)
    parser.add_argument("--only", action="append", choices=["throughput", "failover", "chaos"],
                        help="run only this scenario (repeatable)")
    parser.add_argument("--no-single", action="store_true",
                        help="skip the chaos run's one-replica comparison")
    parser.add_argument("--seed", type=int, default=1, help="of the chaos run's kills")
    parser.add_argument("--server", default=os.environ.get("GEORGE_TEST_POSTGRES_URL", SERVER),
                        help="PostgreSQL, where each scenario creates a database of its own")
    parser.add_argument("--keep", action="store_true", help="keep the files and databases, to look at them")
    parser.add_argument("--profile", type=Path, help="write each replica's cProfile under this folder")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    try:
        missed = asyncio.run(main_async(args))
    except Stuck as e:
        print(f"stuck: {e}")
        sys.exit(1)
    finish(missed, check=args.check)


if __name__ == "__main__":
    main()
