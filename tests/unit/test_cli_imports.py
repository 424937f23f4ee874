"""One CLI (issue #20 item 5): ``socrec`` and ``python -m streams`` are the same typer app, each
command imports what it runs only when it runs, and a service command's exit code is the command's.

A user notices the first as ``socrec --help`` or ``socrec train`` starting in a fraction of a
second on a machine without Kafka, and the last as ``socrec worker`` exiting 3 when Kafka is
unusable (systemd, Kubernetes and the tests read that code).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams.cli import app

ROOT = Path(__file__).resolve().parents[2]
KAFKA_OR_TORCH = ("faust", "aiokafka", "mode", "torch")

# runs `socrec ARGS` in a fresh interpreter and writes the top-level packages it loaded to argv[1]
_PROBE = """
import atexit, json, sys
out, args = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted({m.split(".")[0] for m in sys.modules}))))
sys.argv = ["socrec", *args]
from streams.cli import main
main()
"""


def _loaded(tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return set(json.loads(out.read_text()))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["worker", "--help"],
        ["bench", "throughput", "--help"],
        ["config"],
        ["snapshots", "list", "--snapshot-dir", "{tmp}"],
    ],
    ids=lambda a: " ".join(a).replace("{tmp}", "DIR"),
)
def test_help_and_offline_commands_load_no_kafka_client_and_no_torch(tmp_path: Path, args: list[str]) -> None:
    loaded = _loaded(tmp_path, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert "typer" in loaded  # the probe did run the CLI
    assert loaded.isdisjoint(KAFKA_OR_TORCH), sorted(loaded & set(KAFKA_OR_TORCH))


def _imported_roots(path: Path) -> set[str]:
    """Top-level packages a file imports anywhere, inside functions included."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_socrec_online_never_imports_streams_or_a_kafka_client() -> None:
    """DESIGN.md: ``streams`` imports ``socrec_online``, never the reverse; so ``socrec train`` (all
    ``socrec_online``) cannot reach Faust even through a lazy import."""
    bad = {
        str(p.relative_to(ROOT)): sorted(roots)
        for p in (ROOT / "socrec_online").rglob("*.py")
        if (roots := _imported_roots(p) & {"streams", "faust", "aiokafka", "mode"})
    }
    assert bad == {}


def test_socrec_and_python_m_streams_are_the_same_app() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["socrec"] == "streams.cli:main"
    done = subprocess.run(
        [sys.executable, "-m", "streams", "config"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "", "SOCREC_KAFKA_BOOTSTRAP": "kafka-test:9092"},
    )
    assert done.returncode == 0, done.stderr
    assert "SOCREC_KAFKA_BOOTSTRAP=kafka-test:9092" in done.stdout.splitlines()


def test_worker_flags_override_the_settings_and_its_exit_code_is_the_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.worker

    seen: dict[str, Any] = {}

    def fake_run_worker(settings: Any, **kw: Any) -> int:
        seen.update(kw, bootstrap=settings.kafka_bootstrap, device=settings.device)
        return 3  # "Kafka unusable"

    monkeypatch.setattr(streams.worker, "run_worker", fake_run_worker)
    monkeypatch.setenv("SOCREC_KAFKA_BOOTSTRAP", "from-env:9092")
    monkeypatch.setenv("SOCREC_DEVICE", "cuda")
    res = CliRunner().invoke(app, ["worker", "--bootstrap", "flag:9092", "--loglevel", "debug", "--passthrough"])
    assert res.exit_code == 3, res.output
    assert seen == {"bootstrap": "flag:9092", "device": "cuda", "passthrough": True, "ready_file": None,
                    "loglevel": "DEBUG"}  # fmt: skip
    assert CliRunner().invoke(app, ["worker", "--device", "gpu"]).exit_code == 2  # a usage error, before any work


def test_ctrl_c_in_a_service_command_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.demo

    def interrupted(**kw: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(streams.demo, "run_demo", interrupted)
    res = CliRunner().invoke(app, ["demo", "--events", "10"])
    assert res.exit_code == 130
    assert "interrupted" in res.output


def test_bench_online_events_0_is_the_latency_half_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What ``python -m streams bench-online`` did: only the worker-latency half, its JSON as --out."""
    import benchmarks.online
    import benchmarks.online_latency

    def no_prequential(cfg: Any) -> dict[str, Any]:
        raise AssertionError("--events 0 must skip the prequential half")

    def fake_latency(*, events: int, rate: float, out: Path, dataset: str, data_dir: str | None) -> int:
        out.write_text(json.dumps({"p99_ms_idle": 12.5, "p99_ms_during_finetune": 15.0, "events": events}))
        print("run_latency's own JSON")
        return 0

    monkeypatch.setattr(benchmarks.online, "run_online_bench", no_prequential)
    monkeypatch.setattr(benchmarks.online_latency, "run_latency", fake_latency)
    out = tmp_path / "lat.json"
    res = CliRunner().invoke(app, ["bench", "online", "--events", "0", "--latency-events", "40", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text()) == {"p99_ms_idle": 12.5, "p99_ms_during_finetune": 15.0, "events": 40}
    assert "worker p99 latency: idle 12.5 ms" in res.output and "run_latency's own JSON" not in res.output
