"""benchmarks.soak: the engine soak runs the bounded-key stream on a simulated clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.soak import soak
from socrec_online.models.text import make_tiny_bert


def test_soak_reports_memory_along_a_simulated_hour(tmp_path: Path) -> None:
    model = Path(make_tiny_bert(tmp_path / "tiny_bert"))
    r = soak(600, batch=50, rate=0.5, every=200, text_model=model, users=30, items=40, workdir=tmp_path)
    assert [row["events"] for row in r["series"]] == [200, 400, 600]
    assert r["series"][-1]["simulated_minutes"] == 20.0  # 600 events at 0.5 a second
    assert r["rss_mib_end"] > 0 and r["rss_growth_ratio"] > 0
    assert r["gc_objects_end"] > 0


def test_distinct_users_soak_keeps_the_live_users_within_the_ttl(tmp_path: Path) -> None:
    from benchmarks.soak_distinct import soak_distinct

    model = Path(make_tiny_bert(tmp_path / "tiny_bert"))
    kw: dict[str, Any] = {"batch": 300, "rate": 20.0, "per_user": 3, "item_every": 50, "user_ttl_s": 60.0}
    on = soak_distinct(3000, retention=True, text_model=model, workdir=tmp_path, **kw)
    off = soak_distinct(3000, retention=False, text_model=model, workdir=tmp_path, **kw)
    # 20 events/s, ~3 a user: ~7 new users a second, a 60 s TTL and a sweep a minute: ~800 live at most
    assert off["live_users_end"] >= 3000 and off["user_rows_end"] >= 3000
    assert on["live_users_end"] < 0.8 * off["live_users_end"] and on["user_rows_end"] < off["user_rows_end"]
    assert on["rss_mib_end"] > 0 and on["rss_growth_second_half"] > 0 and len(on["series"]) >= 10
