"""``socrec bench quality --plot``: Recall@10 and NDCG@10 of every model (from
:func:`socrec_online.eval.quality.run_quality`) beside the published RecBole-GNN figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(result: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["models"])
    r = [result["models"][n]["recall@10"] for n in names]
    nd = [result["models"][n]["ndcg@10"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], r, width=0.4, label="Recall@10")
    ax.bar([i + 0.2 for i in x], nd, width=0.4, label="NDCG@10")
    for pub, m in result.get("published_recbole_gnn", {}).items():
        if pub in ("LightGCN", "MHCN", "SEPT"):
            ax.axhline(m["recall@10"], ls="--", lw=0.8, color="gray")
            ax.text(len(names) - 0.5, m["recall@10"], f"{pub} R@10", fontsize=7, va="bottom", ha="right")
    ax.set_xticks(list(x), names, rotation=20)
    ax.set_title(f"{result['dataset']} / {result['protocol']}")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["plot"]
