"""Log set-up: SOCREC_LOG_LEVEL and SOCREC_LOG_FORMAT decide what an operator reads, and how."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from socrec_online.logs import CounterDeltas, configure_logging, describe_assignment, logging_config
from socrec_online.settings import Settings

LIBRARIES = ("aiokafka", "faust", "mode", "kafka")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in LIBRARIES})
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def emit_all() -> None:
    logging.getLogger("socrec.worker").debug("debug detail")
    logging.getLogger("socrec.worker").info("worker ready")
    logging.getLogger("aiokafka.consumer").info("fetch session internals")
    logging.getLogger("aiokafka.consumer").warning("coordinator lost")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("socrec.streams").exception("agent failed")


def test_json_lines_at_info_show_ours_and_library_warnings_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    emit_all()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in lines] == [
        ("INFO", "socrec.worker", "worker ready"),
        ("WARNING", "aiokafka.consumer", "coordinator lost"),
        ("ERROR", "socrec.streams", "agent failed"),
    ]
    assert "RuntimeError: boom" in lines[2]["exc"]
    assert all(isinstance(r["ts"], float) for r in lines)


def test_debug_shows_everything_and_warning_hides_info(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "text")
    emit_all()
    err = capsys.readouterr().err
    assert "DEBUG socrec.worker: debug detail" in err and "INFO aiokafka.consumer: fetch session" in err
    configure_logging("WARNING", "text")
    emit_all()
    err = capsys.readouterr().err
    assert "worker ready" not in err and "WARNING aiokafka.consumer: coordinator lost" in err
    assert "ERROR socrec.streams: agent failed" in err and "Traceback" in err


def test_settings_default_to_info_text_and_refuse_unknown_values() -> None:
    s = Settings.model_construct()
    assert (s.log_level, s.log_format) == ("INFO", "text")
    with pytest.raises(ValueError):
        Settings(log_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        logging_config("INFO", "xml")


def test_describe_assignment_groups_topics_by_partitions() -> None:
    pairs = [("likes", 2), ("clicks", 0), ("clicks", 2), ("likes", 0), ("items", 1)]
    assert describe_assignment(pairs) == "clicks, likes: 0, 2; items: 1"
    assert describe_assignment([]) == "none"


def test_counter_deltas_report_what_grew_since_the_last_take() -> None:
    c = Counter("x_dead_letters_total", "test", ["reason"], registry=CollectorRegistry())
    deltas = CounterDeltas(c, "reason")
    assert deltas.take() == {}
    c.labels(reason="bad_json").inc(3)
    c.labels(reason="missing_field").inc()
    assert deltas.take() == {"bad_json": 3, "missing_field": 1}
    assert deltas.take() == {}
    c.labels(reason="missing_field").inc(2)
    assert deltas.take() == {"missing_field": 2}
