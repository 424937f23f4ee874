"""Command line of the Kafka-touching commands; ``socrec`` forwards here (``socrec_online`` stays Kafka-free)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from socrec_online.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    """SOCREC_* environment plus the flags that override it."""
    overrides = {}
    if getattr(args, "bootstrap", None):
        overrides["kafka_bootstrap"] = args.bootstrap
    if getattr(args, "device", None):
        overrides["device"] = args.device
    return Settings(**overrides)  # type: ignore[arg-type]


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker import run_worker

    return run_worker(
        _settings(args),
        passthrough=args.passthrough,
        ready_file=Path(args.ready_file) if args.ready_file else None,
        loglevel=args.loglevel.upper() if args.loglevel else None,
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.replay import replay

    st = asyncio.run(
        replay(
            _settings(args),
            args.dataset,
            data_dir=args.data_dir,
            events=args.events,
            rate=args.rate,
            bootstrap=not args.no_bootstrap,
            live_ts=not args.dataset_ts,
        )
    )
    print(f"sent {st.sent} events in {st.seconds:.1f}s ({st.rate:.0f} ev/s): {st.by_topic}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(
        events=args.events,
        rate=args.rate,
        dataset=args.dataset,
        data_dir=args.data_dir,
        users_shown=args.users,
        live=not args.no_live,
        scale=args.scale,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from streams.bench_throughput import run_bench

    return run_bench(
        events=args.events,
        rate=args.rate,
        latency_events=args.latency_events,
        device=args.device,
        out=Path(args.out) if args.out else None,
        plot=Path(args.plot) if args.plot else None,
        phases=args.phases.split(","),
        api=args.api,
        model=args.model,
        snapshot=Path(args.snapshot) if args.snapshot else None,
    )


def cmd_trainer(args: argparse.Namespace) -> int:
    from streams.trainer import run_trainer

    return run_trainer(
        _settings(args),
        ready_file=Path(args.ready_file) if args.ready_file else None,
        loglevel=args.loglevel.upper() if args.loglevel else None,
    )


def cmd_announce(args: argparse.Namespace) -> int:
    """Announce VERSION on model-updates (``socrec snapshots rollback`` calls this)."""
    from socrec_online.snapshot import verify_snapshot
    from streams.model_updates import announce

    s = _settings(args)
    path = s.snapshot_dir / args.version
    manifest = verify_snapshot(path)  # never announce what a worker would refuse
    scores = {k: v for k, v in (manifest.get("metrics") or {}).items() if isinstance(v, int | float)}
    asyncio.run(announce(s, args.version, str(path), scores))
    print(f"announced {args.version} on {s.topic_prefix}model-updates")
    return 0


def cmd_bench_online(args: argparse.Namespace) -> int:
    from streams.bench_online import run_latency

    return run_latency(
        events=args.events,
        rate=args.rate,
        out=Path(args.out) if args.out else None,
        dataset=args.dataset,
        data_dir=args.data_dir,
    )


def cmd_produce(args: argparse.Namespace) -> int:
    """JSON lines from stdin to TOPIC, each validated by the decoder first (``socrec produce``)."""
    from socrec_online.events import INPUT_TOPICS
    from streams.console import produce_lines

    if args.topic not in INPUT_TOPICS:
        print(f"{args.topic!r} is not an input topic; input topics: {', '.join(INPUT_TOPICS)}", file=sys.stderr)
        return 2
    from streams.admin import TopicMismatchError

    try:
        return asyncio.run(produce_lines(_settings(args), args.topic, sys.stdin.buffer))
    except TopicMismatchError as e:
        print(e, file=sys.stderr)
        return 2


def cmd_tail(args: argparse.Namespace) -> int:
    """Print TOPIC's records as they arrive (``socrec tail``); Ctrl-C is the normal way out."""
    from streams.console import tail

    try:
        return asyncio.run(
            tail(_settings(args), args.topic, from_beginning=args.from_beginning, max_records=args.max, raw=args.raw)
        )
    except KeyboardInterrupt:
        return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streams", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    w = sub.add_parser("worker", help="run the stream worker against SOCREC_KAFKA_BOOTSTRAP")
    w.add_argument("--bootstrap", help="override SOCREC_KAFKA_BOOTSTRAP")
    w.add_argument("--device", choices=["auto", "cpu", "cuda"])
    w.add_argument("--passthrough", action="store_true", help="decode and re-publish only (bench baseline)")
    w.add_argument("--ready-file", help="write this JSON file once the worker is ready")
    w.add_argument("--loglevel", help="override SOCREC_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR)")
    w.set_defaults(fn=cmd_worker)

    r = sub.add_parser("replay", help="produce a dataset's events to Kafka")
    r.add_argument("dataset", choices=["synthetic", "lastfm", "files"])
    r.add_argument("--data-dir")
    r.add_argument(
        "--events", type=int, default=None, help="interaction events after the bootstrap (default all)"
    )
    r.add_argument("--rate", type=float, default=500.0, help="events/s of the interactions (0 = unpaced)")
    r.add_argument("--no-bootstrap", action="store_true", help="skip the catalogue/graph/profiles burst")
    r.add_argument(
        "--dataset-ts", action="store_true", help="keep the dataset's timestamps (default: wall clock)"
    )
    r.add_argument("--bootstrap", dest="bootstrap", help="override SOCREC_KAFKA_BOOTSTRAP")
    r.set_defaults(fn=cmd_replay)

    d = sub.add_parser("demo", help="broker + worker + trainer + live replay + live view")
    d.add_argument(
        "--events", type=int, default=6000, help="interaction events to replay after the bootstrap"
    )
    d.add_argument("--rate", type=float, default=100.0, help="interaction events/s")
    d.add_argument("--dataset", default="synthetic", choices=["synthetic", "lastfm", "files"])
    d.add_argument("--data-dir")
    d.add_argument("--users", type=int, default=5, help="users whose recommendations are shown")
    d.add_argument("--no-live", action="store_true", help="plain log lines instead of the live view")
    d.add_argument("--scale", type=float, default=1.0, help="synthetic dataset size factor (users, items)")
    d.set_defaults(fn=cmd_demo)

    t = sub.add_parser("trainer", help="fine-tune from the live stream, publish gated snapshots")
    t.add_argument("--bootstrap", help="override SOCREC_KAFKA_BOOTSTRAP")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"])
    t.add_argument("--ready-file", help="write this JSON file once the trainer consumes")
    t.add_argument("--loglevel", help="override SOCREC_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR)")
    t.set_defaults(fn=cmd_trainer)

    a = sub.add_parser("announce", help="announce a snapshot version on model-updates")
    a.add_argument("version")
    a.add_argument("--bootstrap", dest="bootstrap", help="override SOCREC_KAFKA_BOOTSTRAP")
    a.set_defaults(fn=cmd_announce)

    bo = sub.add_parser("bench-online", help="worker p99 with and without a trainer fine-tuning")
    bo.add_argument("--events", type=int, default=3000, help="events per phase")
    bo.add_argument("--rate", type=float, default=100.0, help="events/s")
    bo.add_argument("--dataset", default="synthetic", choices=["synthetic", "lastfm", "files"])
    bo.add_argument("--data-dir")
    bo.add_argument("--out", help="JSON output path")
    bo.set_defaults(fn=cmd_bench_online)

    b = sub.add_parser(
        "bench-throughput", help="throughput, latency and freshness through the broker SOCREC_BROKER names"
    )
    b.add_argument("--events", type=int, default=20000, help="backlog events for the throughput phases")
    b.add_argument("--rate", type=float, default=500.0, help="events/s of the latency phase")
    b.add_argument("--latency-events", type=int, default=10000, help="events of the latency phase")
    b.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    b.add_argument("--out", help="JSON output path")
    b.add_argument("--plot", help="PNG latency histogram + throughput over time")
    b.add_argument("--phases", default="passthrough,throughput,latency")
    b.add_argument("--api", action=argparse.BooleanOptionalAction, default=True,
                   help="latency phase: GET the read API meanwhile (api_get_p50_ms, api_get_p99_ms)")  # fmt: skip
    b.add_argument("--model", choices=["zero-shot", "fused"], default="zero-shot",
                   help="what the workers serve: the zero-shot scorer, or a fused snapshot trained first on "
                        "the synthetic set the bench streams")  # fmt: skip
    b.add_argument("--snapshot", help="serve this snapshot (a snapshot directory, or a directory of them)")
    b.set_defaults(fn=cmd_bench)

    rb = sub.add_parser("bench-reliability", help="kill -9 recovery, poison input, sustained load (long variants)")
    rb.add_argument("--kills", type=int, default=10, help="kill -9 of the worker during the crash phase")
    rb.add_argument("--events", type=int, default=20000, help="events of the crash-recovery stream")
    rb.add_argument("--rate", type=float, default=200.0, help="events/s of the crash-recovery stream")
    rb.add_argument("--duration-s", type=float, default=300.0, help="seconds of the sustained-load phase")
    rb.add_argument("--load-rate", type=float, default=200.0, help="events/s of the sustained-load phase")
    rb.add_argument("--bad", type=int, default=5000, help="bad records of the poison phase")
    rb.add_argument("--fuzz-seconds", type=int, default=60, help="seconds of fuzzing the service path (0: none)")
    rb.add_argument("--tiny-model", action="store_true", help="a tiny random text model instead of MiniLM")
    rb.add_argument("--out", help="JSON output path")
    rb.add_argument("--plot", help="PNG: lag and worker RSS over the sustained-load phase")
    rb.set_defaults(fn=cmd_bench_reliability)

    pr = sub.add_parser("produce", help="JSON lines from stdin to an input topic, validated before sending")
    pr.add_argument("topic", help="input topic without SOCREC_TOPIC_PREFIX (clicks, likes, ...)")
    pr.add_argument("--bootstrap", dest="bootstrap", help="override SOCREC_KAFKA_BOOTSTRAP")
    pr.set_defaults(fn=cmd_produce)

    tl = sub.add_parser("tail", help="print a topic's records for people as they arrive")
    tl.add_argument("topic", help="topic without SOCREC_TOPIC_PREFIX (recommendations, dead-letters, clicks, ...)")
    tl.add_argument("--from-beginning", action="store_true", help="start at the oldest record (default: new ones)")
    tl.add_argument("--max", type=int, default=None, help="stop after this many records")
    tl.add_argument("--raw", action="store_true", help="print each value as it is (one JSON per line)")
    tl.add_argument("--bootstrap", dest="bootstrap", help="override SOCREC_KAFKA_BOOTSTRAP")
    tl.set_defaults(fn=cmd_tail)

    rc = sub.add_parser("bench-recovery", help="recovery time of a killed worker by changelog size")
    rc.add_argument("--sizes", default="10000,100000,1000000", help="changelog records, comma-separated")
    rc.add_argument("--minilm", action="store_true", help="the MiniLM text model instead of a tiny random one")
    rc.add_argument("--out", help="JSON output path")
    rc.set_defaults(fn=cmd_bench_recovery)
    return p


def cmd_bench_recovery(args: argparse.Namespace) -> int:
    from streams.bench_recovery import run_bench as run_recovery

    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    return run_recovery(sizes=sizes, tiny_model=not args.minilm, out=Path(args.out) if args.out else None)


def cmd_bench_reliability(args: argparse.Namespace) -> int:
    from streams.bench_reliability import run_bench as run_reliability

    return run_reliability(
        kills=args.kills,
        events=args.events,
        rate=args.rate,
        duration_s=args.duration_s,
        load_rate=args.load_rate,
        bad=args.bad,
        fuzz_seconds=args.fuzz_seconds,
        tiny_model=args.tiny_model,
        out=Path(args.out) if args.out else None,
        plot=Path(args.plot) if args.plot else None,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
