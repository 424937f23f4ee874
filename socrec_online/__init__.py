"""socrec-online: a streaming social-network recommender (text tower + GNN social tower)."""

__version__ = "0.1.0"
