"""socrec-online: a streaming social-network recommender (text tower + GNN social tower)."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("socrec-online")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
