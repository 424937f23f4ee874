"""The in-process half of ``socrec bench reliability``: inputs at and just past every bound, a bounded
fuzz run, and the verdict "no hostile input ever crashed anything".

- :func:`boundary_cases` derives, from the decoder's bounds in the settings (``max_id_chars``,
  ``max_text_bytes``, ``max_payload_bytes``, ``max_timestamp_s``, ``max_dwell_ms``, ``max_tags``,
  and the key check), one record at each bound and one just past it, per input topic and field,
  with the decoder's expected verdict. :func:`run_boundaries` feeds them through the service path
  in process (``fuzz/service_path.py``: decode, key check, the engine process's re-validation,
  the engine, its table values, a rebuild from them).
- :func:`run_fuzz` runs the atheris target (``fuzz/decode_fuzz.py``) for a bounded time.
- :func:`summary` adds them to the live scenarios' figures: ``crashes`` counts exceptions that
  escaped the dead-letter path in process, fuzz crashes, and worker restarts in the poison and
  load phases; it must be 0.
"""

from __future__ import annotations

import math
import traceback
from pathlib import Path
from typing import Any

import orjson

from socrec_online.events import INPUT_TOPICS
from socrec_online.settings import Settings

Case = tuple[str, str, bytes, str]  # (topic, key mode, value, the decoder's verdict: "accepted" or a reason)
ACCEPTED = "accepted"
_ITEM = "bound-item"  # published first, so that interactions at a bound refer to a known item
_ID_FIELDS = {
    "clicks": ("event_id", "user_id", "item_id"), "likes": ("event_id", "user_id", "item_id"),
    "comments": ("event_id", "user_id", "item_id"), "follows": ("event_id", "user_id", "target_id"),
    "items": ("event_id", "item_id", "author_id"), "profiles": ("event_id", "user_id"),
    "queries": ("event_id", "user_id"),
}  # fmt: skip
_TEXT_TOPICS = ("comments", "items", "profiles", "queries")


def _base(topic: str, n: int) -> dict[str, Any]:
    """A valid value of ``topic`` (event id ``b{n}``, so every case is a new event to the engine)."""
    d: dict[str, Any] = {"event_id": f"b{n}", "ts": 1_700_000_000.0}
    if topic == "items":
        d.update(item_id=_ITEM if n == 0 else f"bi{n}", text="a first item")
    else:
        d["user_id"] = f"bu{n % 7}"
    if topic in ("clicks", "likes", "comments"):
        d["item_id"] = _ITEM
    if topic == "follows":
        d["target_id"] = "bu-followed"
    if topic in ("comments", "profiles", "queries"):
        d["text"] = "nice"
    return d


def boundary_cases(s: Settings) -> list[Case]:
    """Records at and just past each bound the decoder enforces, with the verdict each must get."""
    out: list[Case] = []

    def add(topic: str, change: dict[str, Any], verdict: str, key_mode: str = "owner") -> None:
        d = {**_base(topic, len(out)), **change}
        raw = orjson.dumps(d)
        out.append((topic, key_mode, raw, "payload_too_large" if len(raw) > s.max_payload_bytes else verdict))

    add("items", {}, ACCEPTED)  # the item the interactions below refer to
    n_id = s.max_id_chars
    big_ts = math.nextafter(s.max_timestamp_s, math.inf)
    for topic in INPUT_TOPICS:
        for f in _ID_FIELDS[topic]:
            unique = f"{len(out)}-" if f == "event_id" or (topic, f) == ("items", "item_id") else ""
            for value, verdict in (
                ((unique + "x" * n_id)[:n_id], ACCEPTED), ((unique + "é" * n_id)[:n_id], ACCEPTED),
                ((unique + "x" * n_id)[: n_id] + "x", "id_too_long"), ("", "empty_id"), (" ", "empty_id"),
            ):  # fmt: skip
                if f == "target_id" and value.strip():
                    value = "t" + value[1:]  # never the follower themselves
                add(topic, {f: value}, verdict)
        for ts, verdict in (
            (0, ACCEPTED), (-0.0, ACCEPTED), (s.max_timestamp_s, ACCEPTED), (int(s.max_timestamp_s), ACCEPTED),
            (big_ts, "bad_timestamp"), (-5e-324, "bad_timestamp"), (True, "wrong_type"),
        ):  # fmt: skip
            add(topic, {"ts": ts}, verdict)
        for key_mode, verdict in (("owner", ACCEPTED), ("none", ACCEPTED), ("other", "wrong_key")):
            add(topic, {}, verdict, key_mode)
        _payload_cases(topic, s, out)
    for topic in _TEXT_TOPICS:
        t = s.max_text_bytes
        for text, verdict in (
            ("x" * t, ACCEPTED), ("x" * (t + 1), "text_too_long"), ("é" * (t // 2), ACCEPTED),
            ("é" * (t // 2) + "x" * (t % 2 + 1), "text_too_long"), ("\U0001f600" * (t // 4), ACCEPTED),
            ("\U0001f600" * (t // 4 + 1), "text_too_long"),
        ):  # fmt: skip
            add(topic, {"text": text}, verdict)
    add("queries", {"text": " "}, "empty_text")
    d = s.max_dwell_ms
    for dwell, verdict in (
        (0, ACCEPTED), (d, ACCEPTED), (float(d), ACCEPTED), (d + 1, "out_of_range"), (-1, "out_of_range"),
        (1.5, "wrong_type"),
    ):  # fmt: skip
        add("clicks", {"dwell_ms": dwell}, verdict)
    m = s.max_tags
    tag_cases = [(["t"] * m, ACCEPTED), (["t"] * (m + 1), "out_of_range")]
    tag_cases += [(["g" * s.max_id_chars], ACCEPTED), (["g" * (s.max_id_chars + 1)], "text_too_long")]
    for tags, verdict in tag_cases:
        add("items", {"tags": tags}, verdict)
    return out


def _payload_cases(topic: str, s: Settings, out: list[Case]) -> None:
    """A value of exactly ``max_payload_bytes`` (padded with a field the decoder ignores), and one more byte."""
    for size, verdict in ((s.max_payload_bytes, ACCEPTED), (s.max_payload_bytes + 1, "payload_too_large")):
        d = {**_base(topic, len(out)), "pad": ""}
        d["pad"] = "p" * (size - len(orjson.dumps(d)))
        raw = orjson.dumps(d)
        assert len(raw) == size
        out.append((topic, "owner", raw, verdict))


def run_boundaries(s: Settings, text_model: Path) -> dict[str, Any]:
    """Every boundary case through the service path in process: verdicts and crashes."""
    from fuzz.service_path import ServicePath
    from socrec_online.models.text import TextEncoder, TextEncoderConfig

    path = ServicePath(s, TextEncoder(TextEncoderConfig(model_path=str(text_model), cache_size=1000)))
    cases = boundary_cases(s)
    wrong: list[str] = []
    crashes: list[str] = []
    outcomes: dict[str, int] = {}
    for i, (topic, key_mode, raw, verdict) in enumerate(cases):
        try:
            got = path.decode(topic, key_mode, raw)
            decoded = got if isinstance(got, str) else ACCEPTED
            if decoded != verdict:
                wrong.append(f"case {i} {topic}/{key_mode}: {decoded}, not {verdict} ({raw[:80]!r})")
            if not isinstance(got, str):
                out = path.apply([got])
                got = out["rejected"][0][1] if out["rejected"] else "applied"
            outcomes[got] = outcomes.get(got, 0) + 1
        except Exception:  # noqa: BLE001 - anything escaping the dead-letter path is what this counts
            crashes.append(f"case {i} {topic}/{key_mode}: {traceback.format_exc(limit=3)[-600:]}")
    try:
        path.check_restore()
    except Exception:  # noqa: BLE001 - a rebuild that disagrees or fails is a crash too
        crashes.append(f"restore: {traceback.format_exc(limit=3)[-600:]}")
    return {
        "cases": len(cases),
        "wrong_verdict": len(wrong),
        "wrong_examples": wrong[:10],
        "crashes": len(crashes),
        "crash_examples": crashes[:5],
        "outcomes": outcomes,
    }


def run_fuzz(seconds: int, workdir: Path) -> dict[str, Any]:
    """The atheris target for ``seconds`` (new inputs and crashes under ``workdir``); its summary."""
    from fuzz.decode_fuzz import run

    return run(seconds, workdir / "fuzz-corpus", workdir / "fuzz-crashes")


def summary(
    boundaries: dict[str, Any], fuzz: dict[str, Any] | None, poison: dict[str, Any], load: dict[str, Any]
) -> dict[str, Any]:
    """The bench's hostile-input keys: what was tried, crashes (must be 0), memory at the end of the soak."""
    by_source = {
        "boundary_cases": boundaries["crashes"],
        "fuzz": fuzz["crashes"] if fuzz else 0,
        "poison_restarts": poison["agent_restarts"],
        "load_restarts": 0 if load["same_process"] else 1,
    }
    half = load.get("rss_growth_second_half")
    return {
        "boundary_cases": boundaries["cases"],
        "boundary_wrong_verdict": boundaries["wrong_verdict"],
        "fuzz_inputs": fuzz["inputs"] if fuzz else 0,
        "fuzz_seconds": fuzz["seconds"] if fuzz else 0.0,
        "fuzz_exit_code": fuzz["exit_code"] if fuzz else None,
        "crashes": sum(by_source.values()),
        "crashes_by_source": by_source,
        "rss_end_bytes": round(load["rss_mib_end"] * 2**20),
        "rss_growth_second_half": round(half, 3) if half else None,
    }


def passed(r: dict[str, Any]) -> bool:
    """No crash, every boundary verdict as the decoder's bounds say, and a fuzz run that ran (when asked)."""
    fuzz_ok = r["fuzz_exit_code"] in (None, 0) and (r["fuzz_exit_code"] is None or r["fuzz_inputs"] > 0)
    return r["crashes"] == 0 and r["boundary_wrong_verdict"] == 0 and fuzz_ok


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, want) rows for the bench's table."""
    half = r["rss_growth_second_half"]
    return [
        ("boundary cases tried / wrong verdict", f"{r['boundary_cases']} / {r['boundary_wrong_verdict']}", "- / 0"),
        (f"fuzz inputs tried ({r['fuzz_seconds']:.0f} s with start-up)", str(r["fuzz_inputs"]), ""),
        ("crashes (in process, fuzz, worker restarts)", str(r["crashes"]), "0"),
        ("RSS at the end of the soak, MiB", f"{r['rss_end_bytes'] / 2**20:.0f}", ""),
        ("RSS growth over the second half", "-" if half is None else f"{half:.3f}", "~1.0"),
    ]


__all__ = ["ACCEPTED", "boundary_cases", "passed", "run_boundaries", "run_fuzz", "summary", "table_rows"]
