"""Dataset loaders: ``synthetic`` (built in), ``lastfm`` (HetRec 2011, from a path), ``files`` (your TSVs)."""

from __future__ import annotations

from pathlib import Path

from socrec_online.data.base import Dataset, Interactions
from socrec_online.data.files import DataFormatError, load_files
from socrec_online.data.lastfm import LastFMNotFound, find_lastfm_dir, load_lastfm
from socrec_online.data.synthetic import SyntheticConfig, generate

DATASETS = ("synthetic", "lastfm", "files")


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0, **synthetic_kw: int) -> Dataset:
    """One entry point for every command's ``--dataset NAME [--data-dir DIR]``."""
    if name == "synthetic":
        return generate(SyntheticConfig(seed=seed, **synthetic_kw))  # type: ignore[arg-type]
    if name == "lastfm":
        return load_lastfm(data_dir)
    if name == "files":
        if data_dir is None:
            raise DataFormatError("--dataset files needs --data-dir DIR (interactions.tsv, social.tsv, items.tsv)")
        return load_files(data_dir)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


__all__ = [
    "DATASETS",
    "DataFormatError",
    "Dataset",
    "Interactions",
    "LastFMNotFound",
    "find_lastfm_dir",
    "load_dataset",
    "load_files",
    "load_lastfm",
]
