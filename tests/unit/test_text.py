"""Text tower: pooling, padding invariance, truncation, cache, int8, LoRA, and the real MiniLM tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from socrec_online.models.lora import add_lora, load_lora_state_dict, lora_parameters, lora_state_dict
from socrec_online.models.text import TextEncoder, TextEncoderConfig, pool

TEXTS = ["rock music", "jazz piano live", "hello world", "football news today", "cooking with coffee and tea"]


def enc(path: Path, **kw) -> TextEncoder:
    return TextEncoder(TextEncoderConfig(model_path=str(path), **kw))


def test_encode_shape_norm_and_determinism(tiny_text_model_path: Path) -> None:
    e = enc(tiny_text_model_path)
    v = e.encode(TEXTS + ["rock music"])
    assert v.shape == (6, e.dim) and e.dim == 32
    assert v.dtype == torch.float32 and v.device == e.device
    assert torch.allclose(v.norm(dim=1), torch.ones(6), atol=1e-5)
    assert torch.equal(v[0], v[5])
    assert (v[0] - v[1]).abs().max() > 1e-3  # different texts, different vectors
    assert e.encode([]).shape == (0, 32)
    with pytest.raises(TypeError):
        e.encode("rock music")  # a bare str is a bug, not 10 one-letter texts


def test_tokenizer_knows_real_words(tiny_text_model_path: Path) -> None:
    tok = enc(tiny_text_model_path).tokenizer
    ids = tok("hello world music", add_special_tokens=False)["input_ids"]
    assert ids and tok.unk_token_id not in ids


@pytest.mark.parametrize("pooling", ["mean", "last", "cls"])
def test_vector_does_not_depend_on_batch_mates(tiny_text_model_path: Path, pooling: str) -> None:
    """Padding must be masked out: a text encodes the same alone or next to a long one."""
    long = " ".join(["music"] * 25)
    e = enc(tiny_text_model_path, pooling=pooling, cache_size=0)
    alone = e.encode(["rock music"])
    with_long = e.encode(["rock music", long])
    assert torch.allclose(alone[0], with_long[0], atol=1e-5)


def test_last_token_pooling_handles_left_and_right_padding() -> None:
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B, T, d)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert torch.equal(pool(hidden, right, "last"), torch.stack([hidden[0, 1], hidden[1, 3]]))
    assert torch.equal(pool(hidden, left, "last"), torch.stack([hidden[0, 3], hidden[1, 3]]))
    assert torch.allclose(pool(hidden, right, "mean")[0], hidden[0, :2].mean(0))


def test_truncation_ignores_words_past_max_length(tiny_text_model_path: Path) -> None:
    head = " ".join(["rock"] * 40)
    e = enc(tiny_text_model_path, max_length=16)
    v = e.encode([head + " jazz piano", head + " football news"])
    assert torch.allclose(v[0], v[1], atol=1e-6)


def test_lru_cache_is_bounded_and_serves_the_same_vectors(tiny_text_model_path: Path) -> None:
    e = enc(tiny_text_model_path, cache_size=3)
    first = e.encode(TEXTS)
    assert e.cache_len() == 3
    again = e.encode(TEXTS[-2:])  # the most recent ones are still cached
    assert torch.equal(again, first[-2:])
    fresh = enc(tiny_text_model_path, cache_size=0).encode(TEXTS)
    assert torch.allclose(first, fresh, atol=1e-6)


def test_persistent_cache_round_trip_and_model_id(tiny_text_model_path: Path, tmp_path: Path) -> None:
    e = enc(tiny_text_model_path)
    v = e.encode(TEXTS)
    f = tmp_path / "cache" / "emb.safetensors"
    assert e.save_cache(f) == len(TEXTS)
    e2 = enc(tiny_text_model_path)
    assert e2.load_cache(f) == len(TEXTS)
    assert torch.equal(e2.encode(TEXTS), v)
    other = enc(tiny_text_model_path, pooling="cls")  # other vectors: must not reuse the file
    assert other.model_id != e.model_id
    assert other.load_cache(f) == 0 and other.cache_len() == 0
    f.write_bytes(f.read_bytes()[:40])  # a damaged cache file is ignored, never fatal
    e3 = enc(tiny_text_model_path)
    assert e3.load_cache(f) == 0
    assert torch.allclose(e3.encode(TEXTS), v, atol=1e-6)


def test_cache_hits_and_misses_are_counted(tiny_text_model_path: Path) -> None:
    """socrec_text_cache_hits_total / _misses_total: a text seen before is a hit, a new one a miss
    (distinct texts per call), and with the cache off every text is a miss."""
    from socrec_online import metrics

    def counts() -> tuple[float, float]:
        return (
            metrics.sample("socrec_text_cache_hits_total") or 0.0,
            metrics.sample("socrec_text_cache_misses_total") or 0.0,
        )

    e = enc(tiny_text_model_path)
    h0, m0 = counts()
    e.encode(["rock music", "jazz piano live", "rock music"])
    assert counts() == (h0, m0 + 2)  # two new texts, the repeat inside the call encoded once
    e.encode(["rock music"])
    assert counts() == (h0 + 1, m0 + 2)
    e.encode(["rock music", "football news today"])
    assert counts() == (h0 + 2, m0 + 3)
    off = enc(tiny_text_model_path, cache_size=0)
    off.encode(["rock music"])
    off.encode(["rock music"])
    assert counts() == (h0 + 2, m0 + 5) and off.cache_len() == 0


def test_int8_quantization_stays_close(tiny_text_model_path: Path) -> None:
    fp = enc(tiny_text_model_path).encode(TEXTS)
    q = enc(tiny_text_model_path, quantize=True)
    assert any("quantized" in type(m).__module__ for m in q.model.modules())
    cos = (fp * q.encode(TEXTS)).sum(1)
    assert cos.min() > 0.95
    with pytest.raises(ValueError):
        enc(tiny_text_model_path, quantize=True, device="cuda")


def test_bfloat16_weights_stay_close(tiny_text_model_path: Path) -> None:
    fp = enc(tiny_text_model_path).encode(TEXTS)
    bf = enc(tiny_text_model_path, dtype="bfloat16")
    v = bf.encode(TEXTS)
    assert v.dtype == torch.float32 and next(bf.model.parameters()).dtype == torch.bfloat16
    assert (fp * v).sum(1).min() > 0.99
    with pytest.raises(ValueError):
        TextEncoderConfig(quantize=True, dtype="bfloat16")


def test_from_settings_maps_fields() -> None:
    from socrec_online.settings import Settings

    cfg = TextEncoderConfig.from_settings(
        Settings(text_pooling="last", text_max_length=64, text_batch_size=8, text_dtype="bfloat16")
    )
    assert (cfg.pooling, cfg.max_length, cfg.batch_size, cfg.dtype) == ("last", 64, 8, "bfloat16")


def test_lora_small_fraction_zero_init_and_training_changes_output(tiny_text_model_path: Path) -> None:
    torch.manual_seed(0)
    e = enc(tiny_text_model_path)
    before = e.encode(TEXTS)
    base_weight = {n: p.detach().clone() for n, p in e.model.named_parameters() if "lora_" not in n}
    frac = add_lora(e, r=2, alpha=4)
    assert 0 < frac < 0.05
    assert torch.allclose(e.encode(TEXTS), before, atol=1e-6)  # LoRA-B starts at zero
    opt = torch.optim.AdamW(lora_parameters(e), lr=0.05)
    # a random direction: LayerNorm outputs sum to ~0, so the all-ones one would have no gradient
    target = torch.nn.functional.normalize(torch.randn(e.dim), dim=0)
    for _ in range(2):  # two steps: after the first, B is non-zero and A's gradient flows too
        loss = -(e.encode_train(TEXTS) @ target).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = e.encode(TEXTS)  # must not be served from the stale cache
    assert (after - before).abs().max() > 1e-3
    for n, p in e.model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p.detach(), base_weight[n.replace(".base_layer", "")]), (
                f"frozen weight {n} moved"
            )
    # the LoRA state alone reproduces the fine-tuned encoder
    state = lora_state_dict(e)
    assert state and all("lora_" in k for k in state)
    e2 = enc(tiny_text_model_path)
    add_lora(e2, r=2, alpha=4)
    load_lora_state_dict(e2, state)
    assert torch.allclose(e2.encode(TEXTS), after, atol=1e-5)
    assert e2.model_id == e.model_id != enc(tiny_text_model_path).model_id
    with pytest.raises(KeyError):
        load_lora_state_dict(e2, {"lora_nope": torch.zeros(1)})


def test_minilm_tokenizer_and_similarity(minilm_path: Path) -> None:
    """The real weights: real words are real tokens (not [UNK]) and similar texts are close."""
    e = TextEncoder(TextEncoderConfig(model_path=str(minilm_path)))
    tok = e.tokenizer
    ids = tok("heavy metal guitar band", add_special_tokens=False)["input_ids"]
    assert ids and all(i != tok.unk_token_id for i in ids)
    v = e.encode(["heavy metal band", "thrash metal guitar", "classical piano sonata"])
    assert e.dim == 384
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2


def test_decoder_llm_last_token_pooling_with_left_padding(tmp_path: Path) -> None:
    """A decoder LLM (tiny random GPT-2, left padding, no pad token) loads and pools its last real token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    words = ["<unk>", "<eos>", "rock", "music", "jazz", "piano", "hello", "world", "the", "a"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", eos_token="<eos>", padding_side="left"
    ).save_pretrained(tmp_path)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(words), n_embd=32, n_layer=2, n_head=2, n_positions=64, eos_token_id=1)
    GPT2Model(cfg).save_pretrained(tmp_path)
    e = enc(tmp_path, pooling="last", cache_size=0)
    assert e.tokenizer.padding_side == "left" and e.tokenizer.pad_token is not None
    alone = e.encode(["rock music"])
    batched = e.encode(["rock music", "the a the a the a jazz piano hello world", ""])
    assert torch.allclose(alone[0], batched[0], atol=1e-5)
    assert (batched[0] - batched[1]).abs().max() > 1e-3
    assert torch.isfinite(batched).all()  # an empty text still gets a vector
