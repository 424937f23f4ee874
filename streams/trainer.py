"""``socrec trainer``: consume the live stream, fine-tune periodically, publish gated snapshots.

Why a plain aiokafka consumer and not a Faust app: the trainer keeps no tables and emits
nothing per event. It needs its own consumer group (``SOCREC_TRAINER_APP_ID``: it reads every
event without taking partitions from the workers), one thread for the fine-tune and one
producer for ``model-updates``; a Faust app would add changelog topics and rebalance-driven
recovery for state it does not have. It also reads ``recommendations``: a click that lands on
something recently recommended to that user is a hit, the prequential quality signal that
river's ADWIN watches for drift.

The fine-tune runs on a worker thread (``run_in_executor``), so the loop keeps consuming and
heartbeating meanwhile (the buffer is read under a lock at the start of a run). A published
snapshot is saved atomically, promoted (CURRENT) and announced; workers hot-swap it.
First snapshot: when none exists, the trainer trains one from its buffer once the trigger
fires (a snapshot made offline with ``socrec train`` and promoted is used as the start instead).
A restarted trainer continues from CURRENT and rebuilds its buffer from the log: on its first
assignment it rewinds the catalogue topics to the beginning and the interactions by the buffer's
size before the committed offsets (``_Refill``); the buffer dedups on event_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from aiokafka.abc import ConsumerRebalanceListener

from socrec_online import ops_http
from socrec_online.events import INPUT_TOPICS
from socrec_online.logs import configure_logging
from socrec_online.online import OnlineConfig, OnlineLearner
from socrec_online.online.learner import FinetuneOutcome
from socrec_online.service.decode import DecodeError, decode_event
from socrec_online.settings import Settings
from streams.app import kafka_client_kwargs
from streams.model_updates import announce
from streams.procs import WorkerProcess
from streams.topics import RECOMMENDATIONS, base_name, topic_name

log = logging.getLogger("socrec.trainer")
POLL_MS = 500
MAX_RECORDS = 5000
FETCH_MAX_WAIT_MS = 1000
FETCH_MIN_BYTES = 256 * 1024


def make_learner(settings: Settings) -> OnlineLearner:
    """The real text tower (with LoRA when ``lora_r > 0``) and the online learner over it."""
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    encoder = TextEncoder(TextEncoderConfig.from_settings(settings))
    return OnlineLearner(OnlineConfig.from_settings(settings), settings.snapshot_dir, encoder=encoder)


class Trainer:
    """The consume -> learn -> (thread) fine-tune -> publish -> announce loop."""

    def __init__(self, settings: Settings, learner: OnlineLearner | None = None) -> None:
        self.settings = settings
        self.learner = learner if learner is not None else make_learner(settings)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="socrec-finetune")
        self._job: Future[FinetuneOutcome] | None = None
        self._stop = asyncio.Event()
        self.events = 0
        self.outcomes: list[FinetuneOutcome] = []

    def stop(self) -> None:
        self._stop.set()
        self.learner.stop_event.set()

    async def run(self, ready: Any = None) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        s = self.settings
        topics = [topic_name(s, t) for t in (*INPUT_TOPICS, RECOMMENDATIONS)]
        consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(s),
            group_id=s.trainer_app_id,
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            # the trainer needs throughput, not latency: a fetch that waits for a quarter MiB (or a
            # second) means few requests, so the broker (which serves the workers too, at normal
            # priority) does little work on its behalf; with Kafka's 1-byte minimum every fetch
            # returned with the first record, however long the wait
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            fetch_min_bytes=FETCH_MIN_BYTES,
            max_partition_fetch_bytes=4 << 20,
        )
        producer = AIOKafkaProducer(**kafka_client_kwargs(s), acks="all", client_id="socrec-trainer")
        consumer.subscribe(topics, listener=_Refill(consumer, s))
        await consumer.start()
        await producer.start()
        try:
            if ready is not None:
                ready()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
                self._take(batch)
                await self._maybe_finetune(producer)
            if self._job is not None and not self._job.done():
                await asyncio.wrap_future(self._job)  # ends early: stop_event is set
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _take(self, batch: dict[Any, list[Any]]) -> None:
        rec_topic = RECOMMENDATIONS
        events = []
        recs = []
        for tp, msgs in batch.items():
            name = base_name(self.settings, tp.topic)
            for m in msgs:
                if name == rec_topic:
                    try:
                        recs.append(orjson.loads(m.value))
                    except (orjson.JSONDecodeError, TypeError):
                        continue
                    continue
                try:
                    events.append(decode_event(name, m.value, self.settings))
                except DecodeError:
                    continue  # the workers dead-letter it; the trainer just does not learn from it
        if recs:
            self.learner.observe_recommendations(r for r in recs if isinstance(r, dict))
        if events:
            events.sort(key=lambda e: e.ts)  # partitions interleave: learn in event time
            self.events += self.learner.learn_many(events)

    async def _maybe_finetune(self, producer: Any) -> None:
        job = self._job
        if job is not None:
            if not job.done():
                return
            self._job = None
            out = job.result()
            self.outcomes.append(out)
            log.info("fine-tune %s (%s) in %.1fs [%.3f, %.3f]: %s %s", out.outcome, out.reason, out.seconds,
                     out.started, out.started + out.seconds, out.version or "", out.detail)
            if out.outcome == "published" and out.version and out.path:
                scores = {k: v for k, v in out.metrics.items() if isinstance(v, int | float)}
                await announce(self.settings, out.version, out.path, scores, producer=producer)
            return
        reason = self.learner.due()
        if reason is not None:
            self._job = self._executor.submit(self.learner.finetune, reason)


REFILL_TOPICS = ("items", "follows", "profiles")  # state-like topics: re-read whole on restart
INTERACTION_TOPICS = ("clicks", "likes", "comments")


class _Refill(ConsumerRebalanceListener):  # type: ignore[misc]
    """On the first assignment after a restart, rewind so the buffer is rebuilt from the log.

    The buffer lives in memory; the group's committed offsets would otherwise start it empty
    (and without the item texts of the catalogue). Items, follows and profiles are re-read from
    the beginning; interactions from ``buffer_recent_size + buffer_reservoir_size`` records
    before the committed offset, spread over their partitions. A new group (nothing committed)
    reads from the beginning anyway. Failure to rewind is logged; consumption goes on.
    """

    def __init__(self, consumer: Any, settings: Settings) -> None:
        self.consumer = consumer
        self.settings = settings
        self.done = False

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self.done:
            return
        self.done = True
        try:
            await self._rewind(list(assigned))
        except Exception:  # an optimisation of the restart, never a reason to stop
            log.exception("could not rewind the trainer's inputs; the buffer refills from new events")

    async def _rewind(self, assigned: list[Any]) -> None:
        s = self.settings
        state = [tp for tp in assigned if base_name(s, tp.topic) in REFILL_TOPICS]
        inter = [tp for tp in assigned if base_name(s, tp.topic) in INTERACTION_TOPICS]
        if not state and not inter:
            return
        begins = await self.consumer.beginning_offsets(state + inter)
        per = (s.buffer_recent_size + s.buffer_reservoir_size) // max(len(inter), 1) + 1
        rewound = 0
        for tp in state + inter:
            committed = await self.consumer.committed(tp)
            if committed is None:
                continue  # a new group starts at the beginning (auto_offset_reset=earliest)
            start = begins[tp] if tp in state else max(begins[tp], committed - per)
            if start < committed:
                self.consumer.seek(tp, start)
                rewound += committed - start
        if rewound:
            log.info("rewound %d records to rebuild the buffer after a restart", rewound)


def _yield_cpu(nice: int) -> None:
    """On a shared box the worker's latency comes first: lower this process's CPU priority.

    19 also asks Linux for SCHED_IDLE (run only when a CPU would otherwise idle): measured on the
    2-core machine, nice alone still let a fine-tune raise the worker's p50 noticeably. Threads
    created afterwards (the fine-tune's) inherit it. The price: on a CPU saturated by serving, the
    trainer waits, which is the right order.
    """
    if nice <= 0:
        return
    os.nice(nice)
    if nice >= 19 and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def run_trainer(settings: Settings, *, ready_file: Path | None = None, loglevel: str | None = None) -> int:
    """Run until SIGTERM/SIGINT (a running fine-tune stops early, unpublished).

    ``loglevel`` overrides ``SOCREC_LOG_LEVEL``; the format is ``SOCREC_LOG_FORMAT``.
    """
    import torch

    configure_logging((loglevel or settings.log_level).upper(), settings.log_format)
    _yield_cpu(settings.trainer_nice)
    torch.set_num_threads(settings.torch_threads or max(1, (os.cpu_count() or 2) // 2))
    from streams.admin import TopicMismatchError, ensure_topics
    from streams.topics import required_topics

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(ensure_topics(settings, required_topics(settings)))
    except TopicMismatchError as exc:
        print(f"socrec trainer: {exc}", file=sys.stderr)
        return 2
    wanted = settings.trainer_metrics_port if settings.trainer_metrics_port is not None else settings.metrics_port
    port = ops_http.start_metrics_server(settings.metrics_host, wanted)
    print(f"socrec trainer: metrics on http://{settings.metrics_host}:{port}/metrics", flush=True)
    trainer = Trainer(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, trainer.stop)

    def ready() -> None:
        if ready_file is not None:
            tmp = ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "metrics_port": port, "ts": time.time()}))
            os.replace(tmp, ready_file)
        log.info("trainer ready: group %s, snapshots in %s", settings.trainer_app_id, settings.snapshot_dir)

    try:
        loop.run_until_complete(trainer.run(ready))
    finally:
        ops_http.stop_metrics_server()
        loop.close()
    return 0


class TrainerProcess(WorkerProcess):
    """``python -m streams trainer`` as a managed child (demo, bench, tests)."""

    def command(self) -> list[str]:
        level = ["--loglevel", self.loglevel] if self.loglevel is not None else []
        return [sys.executable, "-m", "streams", "trainer", "--ready-file", str(self.ready_file), *level,
                *self.extra_args]
