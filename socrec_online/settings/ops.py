"""Operations section: metrics and health endpoints, state directories, logging."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class OpsSettings(BaseModel):
    """The Prometheus/health server (socrec_online/health.py), where state lives on disk, and logs."""

    metrics_host: str = Field(
        "127.0.0.1", description="Bind address of the Prometheus, /healthz and /debug endpoints."
    )
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus port (0 = pick a free one).")
    health_stuck_after_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="GET /healthz on the metrics server answers 503 'stuck' when input is pending (consumer "
        "lag > 0) but no micro-batch finished for this long, in seconds, or the lag refresh itself stalled.",
    )
    debug_state_route: bool = Field(
        False,
        description="Serve GET /debug/state on the metrics server: the worker's table state and engine "
        "counts as JSON (user data: for tests and incident debugging, never on a shared network).",
    )
    data_dir: Path = Field(Path("./runs"), description="Worker state directory (Faust tables).")
    snapshot_dir: Path = Field(
        Path("./snapshots"), description="Directory of the model snapshots the trainer writes and workers load."
    )
    lastfm_dir: Path | None = Field(
        None,
        description="Directory with the HetRec 2011 Last.fm files, for the commands that load the data set "
        "(their --data-dir overrides it); unset = they need --data-dir.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description="Log level of the worker and the trainer (their --loglevel flag overrides it). INFO shows "
        "start-up, partition assignments, model swaps and dead-letter counts; DEBUG adds the Kafka client's "
        "and Faust's own lines (held at WARNING otherwise).",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log line format: text (time level logger: message) or json (one object per line with "
        "ts, level, logger, message, exc), for log shippers.",
    )
