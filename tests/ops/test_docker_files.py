"""docker/ is never run on this machine (no engine), so everything that can be checked
statically is: parsing, the compose-spec schema, the wiring between compose, Prometheus and
Grafana, and that every metric the dashboard and the alerts query is one the service exports
(a renamed metric would otherwise leave a panel silently empty in production).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _ci import skip_unless_ci

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
PROM_CONFIG = DOCKER / "prometheus" / "prometheus.yml"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "socrec.json"
PROVISIONING = DOCKER / "grafana" / "provisioning"
DATASOURCE_UID = "socrec-prometheus"
DASHBOARD_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
OPERATIONS = ROOT / "docs" / "operations.md"
# What `docker compose config` needs from the environment (compose.yaml has no default for it).
COMPOSE_ENV = {**os.environ, "GF_ADMIN_PASSWORD": "test-only-password"}
SOCREC_SERVICES = ("worker", "trainer", "replay")  # services that run the socrec image

# Words of PromQL that look like metric names.
_PROMQL_WORDS = {
    "sum", "avg", "max", "min", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "inf", "nan",
}  # fmt: skip
_PROM_BUILTIN: dict[str, set[str]] = {"up": set()}  # synthesised by Prometheus for every target


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Short-syntax volumes ``source:target[:mode]`` -> {source: target}."""
    return dict(v.split(":")[:2] for v in service.get("volumes", []))


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def dashboard_exprs(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, rows included."""
    out: list[tuple[str, str]] = []
    stack = list(dash.get("panels", []))
    while stack:
        p = stack.pop(0)
        stack.extend(p.get("panels", []))
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((p.get("title", "?"), t["expr"]))
    return out


def alert_exprs(alerts: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in alerts["groups"] for r in g["rules"]]


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names in its matcher) for every vector selector of ``expr``."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\[[^\]]*\]", "", s)  # range / subquery durations ($__rate_interval too)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    out = []
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?", s):
        name, matcher = m.group(1), m.group(2) or ""
        if name.lower() in _PROMQL_WORDS or s[m.end() :].lstrip().startswith("("):
            continue  # an operator, or a function / aggregation call
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matcher))
        out.append((name, labels))
    return out


def grouping_labels(expr: str) -> set[str]:
    found: set[str] = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        found |= {x.strip() for x in group.split(",") if x.strip()}
    return found


def exported_series() -> dict[str, set[str]]:
    """Every series name socrec_online.metrics exports -> its label names (from its registry)."""
    from prometheus_client.metrics import MetricWrapperBase

    from socrec_online import metrics

    labels_of: dict[str, set[str]] = {}
    for collector, names in metrics.REGISTRY._collector_to_names.items():
        labels = set(collector._labelnames) if isinstance(collector, MetricWrapperBase) else set()
        for name in names:
            labels_of[name] = labels
    for family in metrics.REGISTRY.collect():
        base = labels_of.get(family.name, set())
        if family.type == "counter":
            labels_of[family.name + "_total"] = base
        elif family.type == "histogram":
            labels_of[family.name + "_bucket"] = base | {"le"}
    return labels_of


# --- parsing and the compose file ------------------------------------------------------------


def test_every_file_parses() -> None:
    for path in sorted(DOCKER.rglob("*.y*ml")):
        assert _load_yaml(path) is not None, path
    for path in sorted(DOCKER.rglob("*.json")):
        json.loads(path.read_text(encoding="utf-8"))
    assert (DOCKER / "Dockerfile").is_file()


def test_compose_validates_against_the_compose_spec_schema() -> None:
    exe = Path(sys.executable).with_name("check-jsonschema")
    tool = str(exe) if exe.exists() else shutil.which("check-jsonschema")
    assert tool, "check-jsonschema (a dev dependency) is not installed"
    r = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _compose_config(tmp_path: Path) -> list[str]:
    """``docker compose config`` where the plugin exists, else Debian's docker-compose 1.29 (what
    ``make test`` installs), which knows every key here but the top-level ``name`` (a Compose v2 key):
    it checks a copy without it, with paths resolved from docker/ as for the real file."""
    docker = shutil.which("docker")
    if docker and not subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode:
        return [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"]
    v1 = shutil.which("docker-compose")
    if not v1:
        skip_unless_ci(
            "neither the docker compose plugin nor docker-compose is installed (`make ops-tools` installs the latter)"
        )
    doc = _load_yaml(COMPOSE)
    assert doc.pop("name") == "socrec"
    copy = tmp_path / "compose.yaml"
    copy.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return [v1, "--project-directory", str(COMPOSE.parent), "-f", str(copy), "config", "--quiet"]


def test_docker_compose_config(tmp_path: Path) -> None:
    r = subprocess.run(_compose_config(tmp_path), capture_output=True, text=True, check=False, env=COMPOSE_ENV)
    assert r.returncode == 0, r.stderr


def test_docker_compose_config_needs_the_grafana_password(tmp_path: Path) -> None:
    """No default admin password in the file: compose refuses to start Grafana without one."""
    env = {k: v for k, v in COMPOSE_ENV.items() if k != "GF_ADMIN_PASSWORD"}
    r = subprocess.run(_compose_config(tmp_path), capture_output=True, text=True, check=False, env=env)
    assert r.returncode != 0 and "GF_ADMIN_PASSWORD" in r.stdout + r.stderr
    grafana = _load_yaml(COMPOSE)["services"]["grafana"]["environment"]
    assert re.fullmatch(r"\$\{GF_ADMIN_PASSWORD:\?[^}]+\}", grafana["GF_SECURITY_ADMIN_PASSWORD"])
    assert "admin/admin" not in COMPOSE.read_text()


def test_docker_compose_config_refuses_a_broken_file(tmp_path: Path) -> None:
    """The check above can fail: a service depending on one that does not exist is refused."""
    cmd = _compose_config(tmp_path)
    doc = _load_yaml(COMPOSE)
    doc["services"]["worker"]["depends_on"] = ["no-such-service"]
    broken = tmp_path / "docker-broken.yaml"
    if "--project-directory" not in cmd:  # the plugin reads the file in place: keep it beside the real one
        broken = COMPOSE.parent / ".broken-compose.yaml"
    else:
        doc.pop("name", None)
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        cmd[cmd.index("-f") + 1] = str(broken)
        r = subprocess.run(cmd, capture_output=True, text=True, check=False, env=COMPOSE_ENV)
    finally:
        if broken.parent == COMPOSE.parent:
            broken.unlink()
    assert r.returncode != 0 and "no-such-service" in (r.stdout + r.stderr)


def _seconds(duration: str) -> float:
    """A compose duration (``1m30s``, ``90s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_long_running_services_have_health_checks() -> None:
    services = _load_yaml(COMPOSE)["services"]
    for name in ("kafka", "worker", "trainer", "prometheus", "grafana"):
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
    worker = services["worker"]
    port = worker["environment"]["SOCREC_METRICS_PORT"]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(worker["healthcheck"]["test"])
    # the probe must outlast the model load, and a slow answer is not a failure
    assert _seconds(worker["healthcheck"]["start_period"]) >= 60
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_the_worker_gets_its_drain_time_before_a_kill() -> None:
    from streams.worker import SHUTDOWN_GRACE_S

    services = _load_yaml(COMPOSE)["services"]
    assert _seconds(services["worker"]["stop_grace_period"]) >= SHUTDOWN_GRACE_S
    assert _seconds(services["trainer"]["stop_grace_period"]) >= 30
    assert _seconds("1m30s") == 90 and _seconds("500ms") == 0.5


def test_every_service_has_an_image_or_a_build() -> None:
    services = _load_yaml(COMPOSE)["services"]
    assert {"kafka", "worker", "trainer", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), f"service {name} has neither image nor build"
    from socrec_online.kafka_broker import KAFKA_VERSION

    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"  # the Kafka the tests run on
    assert services["worker"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert (COMPOSE.parent / services["worker"]["build"]["context"] / "docker" / "Dockerfile").is_file()


def test_kafka_runs_kraft_and_advertises_what_the_workers_dial() -> None:
    services = _load_yaml(COMPOSE)["services"]
    env = services["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in json.dumps(services).lower()
    advertised = {a.split("://", 1)[1] for a in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name in SOCREC_SERVICES:
        assert services[name]["environment"]["SOCREC_KAFKA_BOOTSTRAP"] in advertised, name


def test_socrec_services_use_real_settings_and_listen_for_prometheus() -> None:
    """A misspelt SOCREC_ variable is silently ignored by pydantic-settings: catch it here."""
    from socrec_online.settings import Settings

    services = _load_yaml(COMPOSE)["services"]
    fields = {f"SOCREC_{n.upper()}" for n in Settings.model_fields}
    for name in SOCREC_SERVICES:
        env = services[name]["environment"]
        unknown = {k for k in env if k.startswith("SOCREC_")} - fields
        assert not unknown, f"{name}: not settings: {unknown}"
        assert env["SOCREC_BROKER"] == "kafka"
        assert env["SOCREC_METRICS_HOST"] == "0.0.0.0"
        Settings(**{k.removeprefix("SOCREC_").lower(): v for k, v in env.items()})  # values validate
    assert services["worker"]["deploy"]["replicas"] >= 2
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^USER\s+(?!root\b|0\b)\S+", dockerfile, re.MULTILINE), "the image must not run as root"
    assert re.search(r'^ENTRYPOINT \["socrec"\]', dockerfile, re.MULTILINE)


def test_dockerfile_copies_what_exists_and_the_context_keeps_it() -> None:
    """Every COPY source exists in the repo and survives docker/Dockerfile.dockerignore."""
    dockerfile = (DOCKER / "Dockerfile").read_text()
    kept = {
        line[1:].strip().rstrip("/")
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = [s for m in re.findall(r"^COPY\s+(.+)$", dockerfile, re.MULTILINE) for s in m.split()[:-1]]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert src.rstrip("/") in kept, f"COPY {src}: excluded from the build context"
    assert "torch==${TORCH_VERSION}" in dockerfile and "TORCH_INDEX_URL" in dockerfile


def _socrec_commands() -> set[str]:
    import typer

    from streams.cli import app

    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("service", SOCREC_SERVICES)
def test_compose_commands_exist_in_the_cli(service: str) -> None:
    command = _load_yaml(COMPOSE)["services"][service]["command"][0]
    if command not in _socrec_commands():
        pytest.fail(f"compose runs `socrec {command}`, which the CLI does not have")


# --- Prometheus ------------------------------------------------------------------------------


def test_prometheus_loads_the_alerts_and_scrapes_the_metrics_port() -> None:
    cfg = _load_yaml(PROM_CONFIG)
    services = _load_yaml(COMPOSE)["services"]
    mounts = _mounts(services["prometheus"])
    config_dir = Path(mounts["./prometheus/prometheus.yml"]).parent
    for rule_file in cfg["rule_files"]:
        assert (PROM_CONFIG.parent / rule_file).resolve() == ALERTS.resolve()
        in_container = (config_dir / rule_file).as_posix()
        assert in_container in mounts.values(), f"{in_container} is not mounted into the container"
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    port = int(services["worker"]["environment"]["SOCREC_METRICS_PORT"])
    assert jobs["socrec-worker"]["dns_sd_configs"][0]["names"] == ["worker"]
    assert jobs["socrec-worker"]["dns_sd_configs"][0]["port"] == port
    assert jobs["socrec-trainer"]["static_configs"][0]["targets"] == [f"trainer:{port}"]


# --- Grafana ---------------------------------------------------------------------------------


def test_grafana_provisions_the_datasource_and_the_dashboard_folder() -> None:
    (ds,) = _load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    (provider,) = _load_yaml(PROVISIONING / "dashboards" / "socrec.yml")["providers"]
    grafana = _load_yaml(COMPOSE)["services"]["grafana"]
    mounts = _mounts(grafana)
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


def test_dashboard_imports_into_any_grafana() -> None:
    """$datasource and $instance variables: every panel queries the chosen data source and instances."""
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 39 and dash["uid"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["type"] == "query" and instance["datasource"] == DASHBOARD_DATASOURCE
    assert instance["includeAll"] and instance["multi"] and instance["allValue"] == ".*"
    assert "label_values(" in instance["definition"] and "instance)" in instance["definition"]
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"]), "panel ids must be unique"
    for p in panels:
        assert p["datasource"] == DASHBOARD_DATASOURCE, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DASHBOARD_DATASOURCE, p["title"]
            found = selectors(t["expr"])
            assert all("instance" in labels for _, labels in found), f"{p['title']}: not filtered by $instance"
            assert t["expr"].count('instance=~"$instance"') == len(found), p["title"]


def _family(series: str) -> str:
    for suffix in ("_total", "_bucket", "_count", "_sum", "_created"):
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def test_every_exported_metric_family_has_a_panel() -> None:
    from socrec_online import metrics

    families = {f.name for f in metrics.REGISTRY.collect() if f.name.startswith("socrec_")}
    shown = {_family(name) for _, e in dashboard_exprs(json.loads(DASHBOARD.read_text())) for name, _ in selectors(e)}
    assert len(families) > 20  # the registry was really read
    assert families - shown == set(), "metric families without a dashboard panel"


def test_dashboard_covers_what_on_call_needs() -> None:
    exprs = " ".join(e for _, e in dashboard_exprs(json.loads(DASHBOARD.read_text())))
    for needed in (
        "socrec_events_total", "socrec_dead_letters_total", "socrec_stage_duration_seconds_bucket",
        "socrec_end_to_end_latency_seconds_bucket", "socrec_consumer_lag", "socrec_graph_nodes",
        "socrec_graph_edges", "socrec_model_info", "socrec_finetune_runs_total", "socrec_online_hit_ratio",
        "process_resident_memory_bytes",
    ):  # fmt: skip
        assert needed in exprs, needed
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(socrec_end_to_end_latency_seconds_bucket" in exprs


# --- alerts and their runbooks ------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.MULTILINE):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out


def test_every_alert_links_its_runbook_section() -> None:
    anchors = _anchors(OPERATIONS.read_text(encoding="utf-8"))
    rules = [r for g in _load_yaml(ALERTS)["groups"] for r in g["rules"] if "alert" in r]
    assert rules
    for rule in rules:
        url = rule["annotations"].get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md" and (ROOT / path).is_file(), rule["alert"]
        assert anchor == rule["alert"].lower() and anchor in anchors, f"{rule['alert']}: no section #{anchor}"
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]


def test_alerts_cover_what_pages_on_call() -> None:
    exprs = {r["alert"]: r["expr"] for g in _load_yaml(ALERTS)["groups"] for r in g["rules"] if "alert" in r}
    latency = exprs["SocrecLatencyP99AboveObjective"]
    assert "histogram_quantile(0.99" in latency and "socrec_end_to_end_latency_seconds_bucket" in latency
    assert re.search(r"\)\s*>\s*0\.25\s*$", latency), "the objective is p99 <= 250 ms"
    assert "socrec_last_commit_age_seconds" in exprs["SocrecWorkerStuck"]
    assert "socrec_agent_errors_total" in exprs["SocrecAgentErrors"]
    assert "process_start_time_seconds" in exprs["SocrecRestarting"]
    assert "socrec_dead_letters_total" in exprs["SocrecDeadLettersSpiking"]
    assert "socrec_snapshot_last_success_timestamp_seconds" in exprs["SocrecModelSnapshotStale"]


# --- metric names ----------------------------------------------------------------------------


def _queries() -> list[tuple[str, str]]:
    dash = [("dashboard: " + t, e) for t, e in dashboard_exprs(json.loads(DASHBOARD.read_text()))]
    alerts = [("alert: " + n, e) for n, e in alert_exprs(_load_yaml(ALERTS))]
    return dash + alerts


def test_selector_parser_finds_metrics_and_labels() -> None:
    """The metric check below is only as good as this parser."""
    expr = (
        'histogram_quantile(0.95, sum by (le, stage) (rate(a_bucket{job=~"x.*"}[$__rate_interval])))'
        ' > on() group_left() 1e3 * time() - b unless c{outcome="ok", topic!="items"}'
    )
    assert selectors(expr) == [("a_bucket", {"job"}), ("b", set()), ("c", {"outcome", "topic"})]
    assert grouping_labels(expr) == {"le", "stage"}


@pytest.mark.parametrize("where,expr", _queries())
def test_every_queried_metric_and_label_is_exported(where: str, expr: str) -> None:
    exported = {**exported_series(), **_PROM_BUILTIN}
    found = selectors(expr)
    assert found, f"{where}: no metric in {expr!r}"
    allowed = {"job", "instance"}
    for name, labels in found:
        assert name in exported, f"{where}: {name} is not exported by socrec_online.metrics"
        assert labels <= exported[name] | allowed, f"{where}: {name} has no label {labels - exported[name]}"
        allowed |= exported[name]
    assert grouping_labels(expr) <= allowed, f"{where}: groups by labels its metrics lack"
