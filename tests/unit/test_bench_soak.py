"""benchmarks.soak: the engine soak runs the bounded-key stream on a simulated clock."""

from __future__ import annotations

from pathlib import Path

from benchmarks.soak import soak
from socrec_online.models.text import make_tiny_bert


def test_soak_reports_memory_along_a_simulated_hour(tmp_path: Path) -> None:
    model = Path(make_tiny_bert(tmp_path / "tiny_bert"))
    r = soak(600, batch=50, rate=0.5, every=200, text_model=model, users=30, items=40, workdir=tmp_path)
    assert [row["events"] for row in r["series"]] == [200, 400, 600]
    assert r["series"][-1]["simulated_minutes"] == 20.0  # 600 events at 0.5 a second
    assert r["rss_mib_end"] > 0 and r["rss_growth_ratio"] > 0
    assert r["gc_objects_end"] > 0
