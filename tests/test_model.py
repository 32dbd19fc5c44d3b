"""Model semantics: parameter counts of the paper presets, masking, the KV-cache path, sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import llama, palm
from models import decode, layers, transformer


@pytest.mark.parametrize("family,variant,expected", [
    (llama, "7b", 6.74e9), (llama, "13b", 13.02e9), (llama, "33b", 32.53e9), (llama, "65b", 65.29e9),
    (palm, "8b", 8.63e9), (palm, "62b", 62.50e9), (palm, "540b", 540.35e9),
])
def test_paper_parameter_counts(family, variant, expected):
  total, _ = transformer.count_params(family.get_config(variant).model)  # eval_shape: no memory
  assert abs(total - expected) / expected < 0.005


def tiny(**overrides):
  cfg = llama.get_config("runlocal=True").model
  cfg.update({**dict(vocab_size=97, num_heads=4, num_kv_heads=2), **overrides})
  return cfg


def build(cfg, seed=0):
  return transformer.split_model(transformer.Decoder(cfg, nnx.Rngs(seed)))


def forward(cfg, params, graphdef, tokens, positions=None, segments=None):
  return nnx.merge(graphdef, params)(jnp.asarray(tokens), positions, segments)[0]


@pytest.mark.parametrize("overrides", [
    {}, dict(scan_layers=False), dict(attention="einsum"), dict(block="palm", norm="layer", num_kv_heads=1,
                                                                  tie_embeddings=True),
    dict(remat="full"), dict(remat="save_dots"), dict(num_kv_heads=4)], ids=str)
def test_packed_documents_do_not_attend_across(overrides):
  """Logits of a document are the same alone or packed after another document."""
  cfg = tiny(**overrides)
  graphdef, params = build(cfg)
  rng = np.random.default_rng(0)
  a, b = rng.integers(1, 97, 7), rng.integers(1, 97, 9)
  packed = np.concatenate([a, b])[None]
  segments = np.array([[1] * 7 + [2] * 9])
  positions = np.array([list(range(7)) + list(range(9))])
  packed_logits = forward(cfg, params, graphdef, packed, positions, segments)
  alone = forward(cfg, params, graphdef, b[None])
  np.testing.assert_allclose(packed_logits[0, 7:], alone[0], atol=1e-5)


def test_attention_implementations_agree():
  cfg = tiny()
  graphdef, params = build(cfg)
  tokens = np.arange(1, 17)[None] % 97
  cfg_einsum = tiny(attention="einsum")
  graphdef_einsum, _ = build(cfg_einsum)
  np.testing.assert_allclose(forward(cfg, params, graphdef, tokens),
                             forward(cfg_einsum, params, graphdef_einsum, tokens), atol=1e-5)


def test_gradients_through_remat_match():
  tokens = jnp.asarray(np.arange(1, 17)[None] % 97)
  grads = []
  for remat in ("none", "full", "save_dots"):
    cfg = tiny(remat=remat)
    graphdef, params = build(cfg)
    grads.append(jax.grad(lambda p: forward(cfg, p, graphdef, tokens).mean())(params))  # noqa: B023
  for g in grads[1:]:
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), grads[0], g)


def test_bf16_compute_keeps_f32_params():
  cfg = tiny(dtype="bfloat16")
  graphdef, params = build(cfg)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  logits = forward(cfg, params, graphdef, np.ones((1, 4), np.int32))
  assert logits.dtype == jnp.float32
  f32_logits = forward(tiny(), params, build(tiny())[0], np.ones((1, 4), np.int32))
  np.testing.assert_allclose(logits, f32_logits, atol=0.1)


class CharTokenizer:
  """Bytes as tokens 3..258: enough to test decoding without a trained tokenizer."""
  eos_id, vocab = 1, 259

  def encode(self, text):
    return [b + 3 for b in text.encode()]

  def decode(self, ids):
    return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", errors="replace")


@pytest.mark.parametrize("scan", [True, False])
def test_kv_cache_greedy_matches_full_forward(scan):
  """Greedy decoding with the cache equals argmax of a full forward pass at every step,
  for left-padded prompts of different lengths in one batch."""
  cfg = tiny(vocab_size=259, scan_layers=scan)
  graphdef, params = build(cfg, seed=1)
  tok = CharTokenizer()
  sampler = decode.Sampler(graphdef, params, tok)
  prompts = ["Hello", "A longer prompt"]
  outs = sampler.generate(prompts, max_new_tokens=6, temperature=0.0)
  # Reference: a full causal forward over the right-padded sequence (padding after the last token
  # cannot change its logits), one compiled shape for every length.
  full = jax.jit(lambda ids: forward(cfg, params, graphdef, ids))
  for prompt, out in zip(prompts, outs):
    ids = tok.encode(prompt)
    for _ in range(6):
      padded = np.zeros((1, 32), np.int32)
      padded[0, : len(ids)] = ids
      nxt = int(jnp.argmax(full(padded)[0, len(ids) - 1]))
      if nxt == tok.eos_id:
        break
      ids.append(nxt)
    assert out == tok.decode(ids[len(tok.encode(prompt)):])


def test_stop_strings_cut_the_completion():
  cfg = tiny(vocab_size=259)
  graphdef, params = build(cfg, seed=1)
  sampler = decode.Sampler(graphdef, params, CharTokenizer())
  full = sampler.generate(["Hi"], max_new_tokens=8)[0]
  assert len(full) >= 3
  stop = full[1:3]
  cut = sampler.generate(["Hi"], max_new_tokens=8, stop=(stop,))[0]
  assert cut == full[: full.find(stop)]


def test_sampling_filters():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
  keys = jax.random.split(jax.random.key(0), 400)
  draw = lambda **kw: np.array([int(decode.sample_logits(logits, k, 1.0, **kw)[0]) for k in keys])
  assert set(draw(top_k=2)) == {0, 1}
  assert set(draw(top_p=0.7)) == {0, 1}  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: two tokens survive
  assert set(draw(top_p=0.9)) == {0, 1, 2}
  assert int(decode.sample_logits(logits, keys[0], 0.0)[0]) == 0
  counts = np.bincount(draw(), minlength=4) / len(keys)
  np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.07)


def test_rotary_is_relative():
  """q.k after rotation depends only on the distance between positions."""
  rng = np.random.default_rng(0)
  q, k = rng.normal(size=(2, 1, 1, 1, 16)).astype(np.float32)
  dot = lambda i, j: float(jnp.sum(layers.rotary(q, jnp.array([[i]]), 1e4) * layers.rotary(k, jnp.array([[j]]), 1e4)))
  assert abs(dot(3, 1) - dot(10, 8)) < 1e-4
  assert abs(dot(3, 1) - dot(3, 2)) > 1e-3
