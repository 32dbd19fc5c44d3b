"""KV-cache decoding on the training weights: greedy, temperature, top-k, top-p, stop strings.

Prompts are left-padded into one batch (padding gets segment 0, so no real token attends to it;
positions count real tokens only), prefilled in one call, then decoded one token per step with
the cache. Stop strings are checked on the host on the decoded text, so they may span tokens
(the ReAct agent stops at "\\nObservation").
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.transformer import init_cache


def sample_logits(logits, rng, temperature=0.0, top_k=0, top_p=1.0):
  """logits: [B, V] float32 -> token ids [B]. temperature 0 is greedy."""
  if temperature <= 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / temperature
  if top_k > 0:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs  # probability of strictly better tokens
    cutoff = jnp.min(jnp.where(mass_before < top_p, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < cutoff, -jnp.inf, logits)
  return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


class Sampler:
  """Generates text from a model (graphdef + params) and a tokenizer; jitted once per shape."""

  def __init__(self, graphdef, params, tokenizer):
    self.graphdef, self.params, self.tokenizer = graphdef, params, tokenizer
    self.cfg = nnx.merge(graphdef, params).cfg

  @functools.partial(jax.jit, static_argnums=(0,))
  def _prefill(self, params, tokens, positions, segment_ids, cache):
    logits, cache = nnx.merge(self.graphdef, params)(tokens, positions, segment_ids, cache, 0)
    return logits[:, -1], cache

  @functools.partial(jax.jit, static_argnums=(0, 6, 7, 8), donate_argnums=(2,))
  def _step(self, params, cache, logits, positions, index, temperature, top_k, top_p, rng):
    token = sample_logits(logits, rng, temperature, top_k, top_p)
    model = nnx.merge(self.graphdef, params)
    segment = jnp.ones_like(token)[:, None]
    new_logits, cache = model(token[:, None], positions[:, None], segment, cache, index)
    return token, new_logits[:, -1], cache

  def __hash__(self):
    return id(self)

  def generate(self, prompts, max_new_tokens=64, temperature=0.0, top_k=0, top_p=1.0, stop=(), seed=0):
    """prompts: list of str. Returns the completions (without the stop string that ended them)."""
    tok = self.tokenizer
    encoded = [tok.encode(p) for p in prompts]
    if any(not ids for ids in encoded):
      raise ValueError("generate: every prompt must encode to at least one token")
    batch, prompt_len = len(encoded), max(len(ids) for ids in encoded)
    tokens = np.zeros((batch, prompt_len), np.int32)
    segments = np.zeros((batch, prompt_len), np.int32)
    for row, ids in enumerate(encoded):
      tokens[row, prompt_len - len(ids):] = ids
      segments[row, prompt_len - len(ids):] = 1
    positions = np.maximum(np.cumsum(segments, axis=1) - 1, 0).astype(np.int32)
    cache = init_cache(self.cfg, batch, prompt_len + max_new_tokens)
    logits, cache = self._prefill(self.params, tokens, positions, segments, cache)
    next_positions = jnp.asarray(positions[:, -1] + 1)
    rng = jax.random.key(seed)
    generated = [[] for _ in range(batch)]
    texts, done = [""] * batch, [False] * batch
    for i in range(max_new_tokens):
      rng, step_rng = jax.random.split(rng)
      token, logits, cache = self._step(
          self.params, cache, logits, next_positions + i, prompt_len + i,
          float(temperature), int(top_k), float(top_p), step_rng)
      for row, t in enumerate(np.asarray(token)):
        if done[row]:
          continue
        if t == tok.eos_id:
          done[row] = True
          continue
        generated[row].append(int(t))
        texts[row] = tok.decode(generated[row])
        hits = [texts[row].find(s) for s in stop if s in texts[row]]
        if hits:
          texts[row], done[row] = texts[row][: min(hits)], True
      if all(done):
        break
    return texts
