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

  def _tokens(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
    """Prefills the left-padded prompts, then yields each step's sampled ids [B] (numpy)."""
    encoded = [self.tokenizer.encode(p) for p in prompts]
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
    for i in range(max_new_tokens):
      rng, step_rng = jax.random.split(rng)
      token, logits, cache = self._step(
          self.params, cache, logits, next_positions + i, prompt_len + i,
          float(temperature), int(top_k), float(top_p), step_rng)
      yield np.asarray(token)

  def generate(self, prompts, max_new_tokens=64, temperature=0.0, top_k=0, top_p=1.0, stop=(), seed=0):
    """prompts: list of str. Returns the completions (without the stop string that ended them)."""
    eos = self.tokenizer.eos_id
    generated = [[] for _ in prompts]
    texts, done = [""] * len(prompts), [False] * len(prompts)
    for token in self._tokens(prompts, max_new_tokens, temperature, top_k, top_p, seed):
      for row, t in enumerate(token):
        if done[row]:
          continue
        if t == eos:
          done[row] = True
          continue
        generated[row].append(int(t))
        texts[row], done[row] = _cut_at_stop(self.tokenizer.decode(generated[row]), stop)
      if all(done):
        break
    return texts

  def stream(self, prompt, max_new_tokens=64, temperature=0.0, top_k=0, top_p=1.0, stop=(), seed=0):
    """Yields the completion of one prompt in pieces as its tokens are sampled; the pieces join to
    generate([prompt], ...)[0]. Text is held back while it ends in an unfinished UTF-8 character
    (decoded as U+FFFD) or in what may be the start of a stop string, so no piece is ever taken
    back. Assumes decoding is prefix-stable apart from such an unfinished last character."""
    generated, text, shown = [], "", 0
    for token in self._tokens([prompt], max_new_tokens, temperature, top_k, top_p, seed):
      if token[0] == self.tokenizer.eos_id:
        break
      generated.append(int(token[0]))
      text, stopped = _cut_at_stop(self.tokenizer.decode(generated), stop)
      if stopped:
        break
      settled = text.rstrip("\ufffd")
      safe = len(settled) - _stop_prefix_length(settled, stop)
      if safe > shown:
        yield text[shown:safe]
        shown = safe
    if len(text) > shown:  # the end: whatever was held back is final now
      yield text[shown:]


def _cut_at_stop(text, stop):
  """(text before the first stop string, whether there was one)."""
  hits = [text.find(s) for s in stop if s in text]
  return (text[:min(hits)], True) if hits else (text, False)


def _stop_prefix_length(text, stop):
  """Length of the longest end of `text` that is the start of a stop string (0 when none)."""
  return max((k for s in stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
