"""The throughput bench's per-process cores series (benchmarks/cores.py): the broker's share
of a live run climbs, and the series must show each interval, not a mean over the run."""

from __future__ import annotations

from benchmarks.cores import cores_series


def test_cores_per_interval_from_cumulative_cpu_seconds() -> None:
    samples = [
        (100.0, {"worker": 1.0, "broker": 2.0}),
        (105.0, {"worker": 3.0, "broker": 3.5}),
        (110.0, {"worker": 5.5, "broker": 7.5}),
    ]
    assert cores_series(samples) == [
        {"t": 5.0, "worker": 0.4, "broker": 0.3},
        {"t": 10.0, "worker": 0.5, "broker": 0.8},
    ]


def test_a_process_missing_from_a_sample_is_left_out_and_a_sliver_of_an_interval_is_dropped() -> None:
    # the engine process may be gone (restarting) when one sample is taken; the sample taken when
    # the load generator stops can come 5 ms after the previous one (CPU times tick in 10 ms)
    samples = [(0.0, {"worker": 0.0, "engine": 0.0}), (2.0, {"worker": 1.0}), (2.005, {"worker": 1.01})]
    assert cores_series(samples) == [{"t": 2.0, "worker": 0.5}]
    assert cores_series([]) == []
