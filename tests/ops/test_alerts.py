"""The alert rules, checked by Prometheus' own tool: syntax, the config that loads them, and
their unit tests on synthetic series (docker/prometheus/alerts_test.yml).

promtool comes from Debian's ``prometheus`` package, which ``make test`` installs when absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from _ci import skip_unless_ci

PROM_DIR = Path(__file__).resolve().parents[2] / "docker" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERTS_TEST = PROM_DIR / "alerts_test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        skip_unless_ci("promtool not found: install Debian's prometheus package (make test does)")
    return path


def _run(promtool: str, *args: str, cwd: Path = PROM_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_alert_rules_are_valid(promtool: str) -> None:
    r = _run(promtool, "check", "rules", ALERTS.name)
    assert r.returncode == 0, r.stdout + r.stderr


def test_prometheus_config_is_valid(promtool: str) -> None:
    r = _run(promtool, "check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    r = _run(promtool, "test", "rules", ALERTS_TEST.name)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    cases = [c for t in yaml.safe_load(ALERTS_TEST.read_text())["tests"] for c in t["alert_rule_test"]]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a not-firing test"
    assert (firing | quiet) <= alerts, "tests name alerts that do not exist"


def test_rule_tests_catch_a_broken_threshold(promtool: str, tmp_path: Path) -> None:
    """The unit tests are not vacuous: a lag alert that can no longer fire makes them fail."""
    text = ALERTS.read_text()
    broken = text.replace(
        'socrec_consumer_lag{job="socrec-worker"}) > 1000', 'socrec_consumer_lag{job="socrec-worker"}) > 1e9'
    )
    assert broken != text
    (tmp_path / ALERTS.name).write_text(broken)
    (tmp_path / ALERTS_TEST.name).write_text(ALERTS_TEST.read_text())
    r = _run(promtool, "test", "rules", ALERTS_TEST.name, cwd=tmp_path)
    assert r.returncode != 0 and "SocrecConsumerLagGrowing" in r.stdout + r.stderr
