"""atheris fuzz target: arbitrary bytes through the service path (``fuzz/service_path.py``).

    python -m fuzz.decode_fuzz --seconds 120 [--out runs/fuzz/result.json]

Runs libFuzzer (atheris) for a bounded time in a child process, seeded from the committed corpus
(``tests/unit/fuzz_corpus``, read only); new interesting inputs go to ``--work`` and a crashing
input to ``--crashes`` (libFuzzer stops at the first one). Copy a crash into the committed corpus
once fixed: ``tests/unit/test_fuzz_corpus.py`` replays every file there. Prints (and with
``--out`` writes) a JSON summary: seconds, inputs tried, crashes and their files.

Every input is a record for one of the input topics (byte 0 picks it, byte 1 the Kafka key, the
rest is the value). The decoder and table state are instrumented for coverage; the engine is not
(torch would make each run slow). A fresh engine every ``RESET_EVERY`` inputs, after checking that
a restart from the tables agrees, keeps each run's cost flat.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "unit" / "fuzz_corpus"
RESET_EVERY = 500
MAX_LEN = 2048  # the path's payload bound is 1024 bytes: inputs reach past it


def _child(libfuzzer_args: list[str]) -> None:
    """The fuzzing process: instrument the pure input path, build the engine, hand over to atheris."""
    import atheris

    with atheris.instrument_imports():
        import socrec_online.events
        import socrec_online.service.decode
        import socrec_online.service.state  # noqa: F401
    from fuzz.service_path import ServicePath, path_settings
    from socrec_online.models.text import TextEncoder, TextEncoderConfig
    from socrec_online.models.tiny_bert import make_tiny_bert

    model = make_tiny_bert(Path(tempfile.mkdtemp(prefix="socrec-fuzz-")))
    encoder = TextEncoder(TextEncoderConfig(model_path=str(model), cache_size=10_000))
    settings = path_settings()
    state: dict[str, Any] = {"path": ServicePath(settings, encoder), "n": 0}

    def one_input(data: bytes) -> None:
        state["path"].feed(data)
        state["n"] += 1
        if state["n"] % RESET_EVERY == 0:
            state["path"].check_restore()
            state["path"] = ServicePath(settings, encoder)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def run(seconds: int, work: Path, crashes: Path) -> dict[str, Any]:
    """Fuzz for ``seconds``; the summary of what libFuzzer tried and found."""
    work.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    args = [
        str(work), str(CORPUS), f"-max_total_time={seconds}", f"-artifact_prefix={crashes}/",
        f"-max_len={MAX_LEN}", "-print_final_stats=1", "-timeout=60", "-rss_limit_mb=4096",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz.decode_fuzz", "--child", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=seconds + 600, check=False,
    )  # fmt: skip
    stats = {m[1]: int(m[2]) for m in re.finditer(r"stat::(\w+):\s+(\d+)", proc.stderr)}
    found = sorted(p.name for p in crashes.iterdir() if p.is_file())
    return {
        "seconds": round(time.monotonic() - t0, 1),
        "inputs": stats.get("number_of_executed_units", 0),
        "corpus": sum(1 for _ in work.iterdir()),
        "crashes": len(found),
        "crash_files": found,
        "exit_code": proc.returncode,
        "tail": (proc.stdout + proc.stderr)[-3000:] if found or proc.returncode else "",
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _child(argv[1:])
        return 0
    ap = argparse.ArgumentParser(prog="python -m fuzz.decode_fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60, help="how long to fuzz (default 60)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "fuzz" / "corpus", help="new inputs go here")
    ap.add_argument("--crashes", type=Path, default=ROOT / "runs" / "fuzz" / "crashes", help="crashing inputs")
    ap.add_argument("--out", type=Path, help="write the JSON summary here too")
    a = ap.parse_args(argv)
    result = run(a.seconds, a.work, a.crashes)
    text = json.dumps(result, indent=2)
    print(text)
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    return 1 if result["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
