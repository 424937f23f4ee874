"""Offline evaluation: seeded splits, full-ranking metrics, baselines, protocols."""
