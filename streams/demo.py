"""``socrec demo``: the whole service on one machine, live, then a clean exit.

A broker (Apache Kafka; SOCREC_BROKER=embedded for Tansu) -> a real worker process and a real trainer process -> a live replay of a dataset (catalogue, graph and
profiles first, then ``events`` interactions at ``rate``) -> a rich live view of what the
operator cares about: events/s, end-to-end latency percentiles, and what a few users are
being recommended, and why, and which model version serves them (the trainer fine-tunes
from the stream, publishes gated snapshots, and the worker hot-swaps them live). Every child
process is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections import Counter, deque
from itertools import islice
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from socrec_online.broker import free_port
from socrec_online.brokers import make_broker
from socrec_online.data import load_dataset
from socrec_online.events import Event
from socrec_online.settings import Settings
from streams.admin import ensure_topics
from streams.observe import OutputWatcher, events_done, percentiles, scrape
from streams.procs import WorkerProcess
from streams.replay import EventProducer, ProduceStats, produce, split_stream
from streams.topics import required_topics

DRAIN_TIMEOUT_S = 60.0


class DemoState:
    """What the live view shows; fed by the replay, the output watcher and metric scrapes."""

    def __init__(self, watch: list[str], metrics_url: str) -> None:
        self.watch = watch
        self.metrics_url = metrics_url
        self.phase = "starting"
        self.sent = 0
        self.to_send = 0
        self.sent_ts: dict[str, tuple[float, str]] = {}  # event id -> (ts, phase sent in), for latency
        self.latencies: deque[float] = deque(maxlen=5000)
        # every latency by the phase its event was sent in: the bootstrap is a burst at full speed
        # (a backlog, seconds of latency by design), the live replay runs at the configured rate
        self.by_phase: dict[str, list[float]] = {}
        self.recs = Counter[str]()
        self.dead = Counter[str]()
        self.latest: dict[str, dict[str, Any]] = {}
        self.done_samples: deque[tuple[float, float]] = deque(maxlen=64)
        self.model_version = "?"
        self.trainer_url = ""
        self.trainer_port = 0
        self.finetunes: dict[str, int] = {}
        self.interrupted = False  # Ctrl-C seen (streams.demo._cancel_on_sigint)

    def on_sent(self, ev: Event) -> None:
        self.sent += 1
        self.sent_ts[ev.event_id] = (ev.ts, self.phase)

    def on_rec(self, p: dict[str, Any], published: float) -> None:
        kind = str(p.get("kind"))
        self.recs[kind] += 1
        self.model_version = str(p.get("model_version", self.model_version))
        src = self.sent_ts.get(p.get("source_event_id") or "")
        if src is not None and kind == "items":
            lat = max(0.0, published - src[0])
            self.latencies.append(lat)
            self.by_phase.setdefault(src[1], []).append(lat)
        if p.get("user_id") in self.watch and kind in ("items", "query"):
            self.latest[str(p["user_id"])] = p

    def on_dead(self, d: dict[str, Any]) -> None:
        self.dead[str(d.get("reason"))] += 1

    def rate(self) -> float:
        s = self.done_samples
        if len(s) < 2:
            return 0.0
        (t0, d0), (t1, d1) = s[max(0, len(s) - 20)], s[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def render(self) -> Group:
        stats = Table.grid(padding=(0, 2))
        done = self.done_samples[-1][1] if self.done_samples else 0
        pct = percentiles(self.latencies)
        stats.add_row("phase", f"[bold]{self.phase}[/]")
        stats.add_row("events sent / processed", f"{self.sent} / {int(done)}")
        stats.add_row("events/s (processed)", f"{self.rate():,.0f}")
        stats.add_row(
            "latency event -> recommendation",
            "  ".join(f"{k} {v * 1000:,.0f} ms" for k, v in pct.items()) if self.latencies else "-",
        )
        stats.add_row("recommendations", ", ".join(f"{k} {v}" for k, v in sorted(self.recs.items())) or "-")
        stats.add_row("dead letters", ", ".join(f"{k} {v}" for k, v in sorted(self.dead.items())) or "0")
        stats.add_row("model serving", self.model_version)
        if self.trainer_url:
            runs = ", ".join(f"{k} {v}" for k, v in sorted(self.finetunes.items()) if v) or "none yet"
            stats.add_row("trainer fine-tunes", runs)
        stats.add_row("metrics", self.metrics_url)
        recs = Table(title="latest recommendations", expand=True, show_lines=False)
        recs.add_column("user", no_wrap=True)
        recs.add_column("top items (score, reason)")
        for uid in self.watch:
            p = self.latest.get(uid)
            if p is None:
                recs.add_row(uid, "[dim]waiting for activity...[/]")
                continue
            lines = [f"{i['id']} ({i['score']:.2f}) {i['reason']}" for i in p.get("items", [])[:3]]
            recs.add_row(uid, "\n".join(lines) or "[dim](nothing new to recommend)[/]")
        return Group(Panel(stats, title="socrec demo"), recs)


def _watch_users(events: list[Event], n: int) -> list[str]:
    counts = Counter(getattr(e, "user_id", None) for e in events)
    counts.pop(None, None)
    return [str(u) for u, _ in counts.most_common(n)]


async def _demo(
    state: DemoState,
    settings: Settings,
    metrics_port: int,
    head: list[Event],
    live_events: list[Event],
    rate: float,
    live: Live | None,
    console: Console,
) -> None:
    _cancel_on_sigint(state)
    await ensure_topics(settings, required_topics(settings))
    watcher = OutputWatcher(settings, state.on_rec, state.on_dead, from_beginning=False)
    await watcher.start()

    async def refresh() -> None:
        while True:
            sample = await asyncio.to_thread(scrape, metrics_port)
            if sample:
                state.done_samples.append((time.monotonic(), events_done(sample)))
            if state.trainer_port:
                t = await asyncio.to_thread(scrape, state.trainer_port)
                for o in ("published", "rejected", "failed"):
                    state.finetunes[o] = int(t.get(f'socrec_finetune_runs_total{{outcome="{o}"}}', 0))
            if live is not None:
                live.update(state.render())
            else:
                d = state.done_samples[-1][1] if state.done_samples else 0
                pct = percentiles(state.latencies)
                console.print(
                    f"{state.phase}: sent {state.sent} processed {int(d)} ({state.rate():.0f} ev/s) "
                    f"p50 {pct['p50'] * 1000:.0f} ms p99 {pct['p99'] * 1000:.0f} ms recs {dict(state.recs)}",
                    markup=False,
                    highlight=False,
                )
            await asyncio.sleep(0.5 if live is not None else 5.0)

    ticker = asyncio.create_task(refresh())
    try:
        stats = ProduceStats()
        async with EventProducer(settings) as producer:
            state.phase = f"bootstrap: catalogue, social graph, profiles ({len(head)} events)"
            await produce(producer, head, 0.0, stats=stats, on_sent=state.on_sent)
            state.phase = f"live replay at {rate:.0f} events/s"
            await produce(producer, live_events, rate, stats=stats, on_sent=state.on_sent)
        state.phase = "draining"
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            if state.done_samples and state.done_samples[-1][1] >= state.sent:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)  # the last recommendations reach the watcher
        state.phase = "done"
        if live is not None:
            live.update(state.render())
    finally:
        ticker.cancel()
        await watcher.stop()


RECANCEL_S = 1.0


def _cancel_on_sigint(state: DemoState) -> None:
    """Ctrl-C cancels the demo's task, and cancels it again each second until it has stopped.

    asyncio.run's own handler cancels once, and under load that cancellation was lost once in CI
    (Python 3.11; somewhere in the replay's awaits): the replay ran to its end and the demo exited 0
    instead of 130. A repeated cancel cannot be lost; ``state.interrupted`` says it happened.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_sigint() -> None:
        state.interrupted = True
        if task is not None and not task.done():
            task.cancel()
            loop.call_later(RECANCEL_S, on_sigint)

    loop.add_signal_handler(signal.SIGINT, on_sigint)


def _run_interruptible(state: DemoState, main: Any) -> None:
    """asyncio.run(main), raising KeyboardInterrupt when Ctrl-C stopped it (see _cancel_on_sigint)."""
    try:
        asyncio.run(main)
    except asyncio.CancelledError:
        if not state.interrupted:
            raise
    if state.interrupted:
        raise KeyboardInterrupt


def run_demo(
    *,
    events: int = 6000,
    rate: float = 100.0,
    dataset: str = "synthetic",
    data_dir: str | None = None,
    users_shown: int = 5,
    live: bool = True,
    scale: float = 1.0,
) -> int:
    console = Console()
    base = Settings()
    workdir = Path(tempfile.mkdtemp(prefix="socrec-demo-"))
    console.print(f"[bold]socrec demo[/]: dataset [cyan]{dataset}[/], {events} live events at {rate:.0f}/s")
    kw: dict[str, int] = {}
    if dataset == "synthetic" and scale != 1.0:
        from socrec_online.data import SyntheticConfig

        kw = {"n_users": max(10, int(SyntheticConfig.n_users * scale)),
              "n_items": max(20, int(SyntheticConfig.n_items * scale))}  # fmt: skip
    ds = load_dataset(dataset, data_dir, seed=base.seed, **kw)
    head, rest = split_stream(ds)
    live_events = list(islice(rest, events))
    watch = _watch_users(live_events, users_shown)

    broker = make_broker(base.broker, data_dir=workdir / "kafka", log_path=workdir / "broker.log")
    worker: WorkerProcess | None = None
    trainer: WorkerProcess | None = None
    code = 0
    try:
        broker.start()
        metrics_port = free_port(base.metrics_host)
        env = {
            "SOCREC_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SOCREC_BROKER": base.broker,
            "SOCREC_METRICS_PORT": str(metrics_port),
            "SOCREC_WEB_PORT": str(free_port(base.web_host)),
            "SOCREC_DATA_DIR": str(workdir / "data"),
            "SOCREC_SNAPSHOT_DIR": str(workdir / "snapshots"),
            "SOCREC_TRAINER_METRICS_PORT": str(free_port(base.metrics_host)),
            # a short demo should see a few fine-tunes (the production default is every 5000 events)
            "SOCREC_FINETUNE_EVERY_EVENTS": os.environ.get("SOCREC_FINETUNE_EVERY_EVENTS", "1500"),
        }
        os.environ.update(env)  # this process's producer and watcher use the same settings
        settings = Settings()
        metrics_url = f"http://{settings.metrics_host}:{metrics_port}/metrics"
        console.print(f"broker: {broker.name} {broker.version} on [cyan]{broker.bootstrap}[/]")
        console.print(f"Prometheus metrics: [cyan]{metrics_url}[/]")
        from streams.trainer import TrainerProcess

        worker = WorkerProcess(env, log_path=workdir / "worker.log", loglevel="WARNING").start()
        trainer = TrainerProcess(env, log_path=workdir / "trainer.log", loglevel="INFO").start()
        with console.status("starting the worker and the trainer (loading the text model, joining groups)..."):
            worker.wait_ready(timeout=300)
            trainer.wait_ready(timeout=300)
        state = DemoState(watch, metrics_url)
        state.trainer_port = int(env["SOCREC_TRAINER_METRICS_PORT"])
        state.trainer_url = f"http://{settings.metrics_host}:{state.trainer_port}/metrics"
        view = Live(state.render(), console=console, refresh_per_second=4) if live else contextlib.nullcontext()
        with view as lv:
            _run_interruptible(state, _demo(state, settings, metrics_port, head, live_events, rate, lv, console))
        console.print(
            f"[bold green]done[/]: {state.sent} events sent, recommendations {dict(state.recs)}, "
            f"dead letters {sum(state.dead.values())}; model {state.model_version}, fine-tunes {state.finetunes}"
        )
        for phase, lats in state.by_phase.items():
            pct = percentiles(lats)
            console.print(
                f"latency event -> recommendation, events sent in {phase}: p50 {pct['p50'] * 1000:.0f} ms, "
                f"p95 {pct['p95'] * 1000:.0f} ms, p99 {pct['p99'] * 1000:.0f} ms ({len(lats)} recommendations)"
            )
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping the worker and the broker[/]")
        code = 130
    finally:
        if trainer is not None:
            trc = trainer.stop()
            if trc not in (0, None, -15) and code == 0:
                console.print(f"[red]trainer exited with {trc}[/]; log: {trainer.log_path}")
                code = 1
        if worker is not None:
            rc = worker.stop()
            if rc not in (0, None, -15) and code == 0:
                console.print(f"[red]worker exited with {rc}[/]; log: {worker.log_path}")
                code = 1
        broker.stop()
        if code == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            console.print(f"logs kept in {workdir}")
    return code
