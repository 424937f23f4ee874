"""A tiny random BERT on disk that ``TextEncoder`` loads like a real model.

Tests, the fuzzers and the benchmarks' workers need a text tower that loads in milliseconds and
needs no downloaded weights; its vocabulary holds the words the synthetic data and the tests use,
so they do not all become [UNK].
"""

from __future__ import annotations

from pathlib import Path

import torch

from socrec_online.models.local_hf import quiet_loading

_TINY_TEXT = (
    "the a an and or of to in on for with is are was music rock pop jazz metal indie folk punk "
    "electronic hip hop rap soul blues classical dance house techno ambient band singer song songs "
    "album live guitar piano drums love night city summer dark light new old best great good "
    "football soccer cooking travel photo photography movie film book books art game games news "
    "tech science python code data cat cats dog dogs food coffee tea hello world tags"
)


def make_tiny_bert(
    path: str | Path, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0
) -> Path:
    """Write a tiny random BERT (weights, config, vocab.txt, tokenizer files) that loads like a real one."""
    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + list(
        "abcdefghijklmnopqrstuvwxyz0123456789"
    )
    words = specials + list(dict.fromkeys(_TINY_TEXT.split() + pieces))
    (path / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    tok.save_pretrained(str(path))
    cfg = BertConfig(
        vocab_size=len(words),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        type_vocab_size=2,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = BertModel(cfg)
    with quiet_loading():
        model.save_pretrained(str(path), safe_serialization=True)
    return path
