"""Batched multi-turn decoding: the one decoding loop (agents, few-shot generation, models/decode.Sampler
for text, PPO's rollouts for token ids).

Thousands of ReAct episodes cannot be decoded one at a time, so `Engine` keeps `batch_size` rows
decoding together with one KV cache:
  * the shared few-shot prefix is prefilled once (batch 1) and its keys/values are stored once:
    every row attends to that one copy (one softmax over prefix and own keys), so a 2k-token
    ReAct prompt costs neither memory nor bandwidth per row;
  * every row has its own write index, so rows sit at different lengths (Attention writes row b's
    new keys at cache_index[b]);
  * a row generates until one of its own stop strings (checked on the host on decoded text) or its
    token budget, hands the completion to its episode, and is fed the episode's next text (an
    observation) in length-bucketed "feed" calls of that row alone: padding every row of the batch
    to the longest observation would cost up to batch_size times the real tokens;
  * a finished row is refilled with the next episode: its index goes back to 0 (the row's own
    slots start after the prefix). Its old slots need no clearing: attention is causal by slot, and every slot up to a
    query's own is rewritten by the new episode before that query runs.

An episode is any object with start() -> Turn, step(completion) -> Turn | None and abort(reason)
(see eval/api.py). Generation is greedy unless run() is given a temperature (agent benchmarks are
scored greedily). Sampling draws each episode's tokens from its own rng chain, split once per token:
episode e starts from episode_keys(seed)[e], whatever rows its neighbours are in, and episode 0's
chain is jax.random.key(seed) itself, so one prompt draws what the old per-prompt Sampler drew.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.transformer import init_cache

FEED_BUCKETS = (16, 64, 256)  # padded lengths of feed calls: a handful of compiled shapes
PREFIX_ROUND = 256  # the prefix is padded to a multiple of this (its own compiled shape)
DECODE_SPAN = 1024  # decode steps read a multiple of this many of each row's own slots


GREEDY = (0.0, 0, 1.0)  # (temperature, top_k, top_p)


def bucket(n, buckets):
  """The smallest of the ascending `buckets` >= n; past the last, a multiple of the last."""
  return next((b for b in buckets if b >= n), -(-n // buckets[-1]) * buckets[-1])


@dataclasses.dataclass(frozen=True)
class Turn:
  """Text to append to an episode's context, then generate until a stop string."""
  text: str
  stop: tuple = ()
  max_new_tokens: int = 128


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


def _draw(logits, key_data, sampling):
  """logits [B, V], key_data [B, ...] (each row's chain, raw) -> (tokens [B], advanced key_data).
  Each row splits its own key once: rng, step_rng = split(rng), then samples with step_rng."""
  if sampling[0] <= 0.0:
    return sample_logits(logits, None), key_data
  keys = jax.vmap(jax.random.split)(jax.random.wrap_key_data(key_data))  # [B, 2]
  one_row = lambda row_logits, k: sample_logits(row_logits[None], k, *sampling)[0]
  return jax.vmap(one_row)(logits, keys[:, 1]), jax.random.key_data(keys[:, 0])


def episode_keys(seed, n):
  """Raw key data [n, ...]: where each episode's chain starts. seed: an int or a PRNG key. Episode 0
  gets the key itself, episode e > 0 fold_in(key, e)."""
  key = seed if _is_key(seed) else jax.random.key(seed)
  data = np.array(jax.random.key_data(jax.vmap(lambda e: jax.random.fold_in(key, e))(jnp.arange(n))))
  data[:1] = jax.random.key_data(key)
  return data


def _is_key(x):
  return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


class _Row:
  """Host-side state of one batch row."""

  def __init__(self):
    self.episode = None
    self.pending = []  # token ids still to feed
    self.generated = []  # ids generated in the current turn
    self.turn = None
    self.length = 0  # filled slots of the row's own (after the shared prefix)


class Engine:
  """Multi-turn decoding over `batch_size` rows of `max_length` tokens each."""

  def __init__(self, graphdef, params, tokenizer, batch_size=16, max_length=4096,
               feed_buckets=FEED_BUCKETS, decode_span=DECODE_SPAN):
    self.graphdef, self.params, self.tokenizer = graphdef, params, tokenizer
    self.cfg = nnx.merge(graphdef, params).cfg
    self.batch_size, self.max_length = batch_size, max_length
    self.feed_buckets = tuple(b for b in feed_buckets if b < max_length) or (max_length,)
    self.decode_span = decode_span
    self.stats = dict(feed_calls=0, decode_steps=0, fed_tokens=0, generated_tokens=0)

  def __hash__(self):
    return id(self)

  @functools.partial(jax.jit, static_argnums=(0,), static_argnames=("sampling",), donate_argnums=(2,))
  def _feed(self, params, cache, prefix, row, tokens, positions, segments, index, last, key, sampling):
    """Feeds one row of the cache: tokens/positions/segments [1, C] go to slots index .. index + C
    of row `row`; last: the chunk position of the final real token; key: the row's rng (raw).
    Returns (next token, advanced key, cache). One row at a time: a feed costs its own tokens,
    not a padded batch's."""
    model = nnx.merge(self.graphdef, params)
    own = {name: jax.lax.dynamic_slice_in_dim(c, row, 1, axis=1) for name, c in cache.items()}
    logits, own = model(tokens, positions, segments, dict(own, **prefix), index)
    cache = {name: jax.lax.dynamic_update_slice_in_dim(c, own[name], row, axis=1)
             for name, c in cache.items()}
    token, key = _draw(logits[0, last][None], key[None], sampling)
    return token[0], key[0], cache

  @functools.partial(jax.jit, static_argnums=(0, 8), static_argnames=("sampling",), donate_argnums=(2,))
  def _decode(self, params, cache, prefix, tokens, positions, index, active, span, keys, sampling):
    """One token per row: tokens, positions, index, active [B]; keys: each row's rng (raw) [B, ...].
    Returns (next tokens [B], advanced keys, cache). Inactive rows write an empty slot.
    Only the first `span` slots of each row (all its filled ones) are read and written: attention
    over the unfilled rest of the cache would cost as much again."""
    model = nnx.merge(self.graphdef, params)
    segment = active.astype(jnp.int32)[:, None]
    own = {name: c[:, :, :span] for name, c in cache.items()}
    logits, own = model(tokens[:, None], positions[:, None], segment, dict(own, **prefix), index)
    cache = {name: jax.lax.dynamic_update_slice_in_dim(c, own[name], 0, axis=2)
             for name, c in cache.items()}
    tokens, keys = _draw(logits[:, -1], keys, sampling)
    return tokens, keys, cache

  def _prefix(self, prefix_ids):
    """The prefix's keys/values [layers, P, K, H], prefilled once with batch 1."""
    n = max(len(prefix_ids), 1)
    length = -(-n // PREFIX_ROUND) * PREFIX_ROUND  # every row reads all of it each step: keep it tight
    one = init_cache(self.cfg, 1, length)
    tokens = np.zeros((1, length), np.int32)
    tokens[0, :len(prefix_ids)] = prefix_ids
    segments = (np.arange(length) < len(prefix_ids)).astype(np.int32)[None]
    positions = np.arange(length, dtype=np.int32)[None]
    _, _, one = self._feed(self.params, one, {}, np.int32(0), tokens, positions, segments, np.int32(0),
                           np.int32(n - 1), episode_keys(0, 1)[0], sampling=GREEDY)
    return dict(prefix_k=one["k"][:, 0], prefix_v=one["v"][:, 0],
                prefix_segments=one["segment_ids"][:, 0])

  def run(self, prefix, episodes, progress=None, **sampling):
    """Runs every episode to its end. prefix: text shared by all episodes (prefilled once).
    progress: optional callable(n_finished) called as episodes end. sampling: see tokens()."""
    for _ in self.tokens(prefix, episodes, progress, **sampling):
      pass
    return self.stats

  def generate(self, prompts, stop=(), max_new_tokens=128, prefix="", progress=None, **sampling):
    """One turn per prompt after the shared `prefix` -> completions, cut before the first stop
    string (EOS and the stop string dropped; "" for an aborted episode)."""
    episodes = [OneTurn(Turn(p, tuple(stop), max_new_tokens)) for p in prompts]
    self.run(prefix, episodes, progress, **sampling)
    return [e.completion for e in episodes]

  def tokens(self, prefix, episodes, progress=None, temperature=0.0, top_k=0, top_p=1.0, seed=0):
    """run() as a generator: yields (episode, token id) as each row takes a generated token (EOS
    included), before the engine acts on it. temperature 0 is greedy; otherwise tokens are drawn
    with top_k / top_p, episode e from the chain starting at episode_keys(seed)[e]."""
    tok = self.tokenizer
    sampling = (float(temperature), int(top_k), float(top_p))
    prefix_ids = tok.encode(prefix) if prefix else []
    if len(prefix_ids) + 1 >= self.max_length:
      raise ValueError(f"prefix is {len(prefix_ids)} tokens; the engine holds {self.max_length}")
    prefix = self._prefix(prefix_ids)
    base = len(prefix_ids)  # positions of a row's own tokens start here
    room = self.max_length - base  # own slots per row
    episodes = list(episodes)
    batch = min(self.batch_size, max(len(episodes), 1))
    # A row's own slots, rounded (few compiled shapes), plus headroom so a padded feed written at
    # any row's index stays inside the cache (no clamping).
    cache_slots = -(-room // 256) * 256 + max(self.feed_buckets)
    cache = init_cache(self.cfg, batch, cache_slots)
    queue = iter(enumerate(episodes))
    greedy = sampling[0] <= 0
    starts = np.zeros((len(episodes), 2), np.uint32) if greedy else episode_keys(seed, max(len(episodes), 1))
    rows = [_Row() for _ in range(batch)]
    keys = np.zeros((batch,) + starts.shape[1:], starts.dtype)  # each row's rng chain (raw)
    next_token = np.zeros(batch, np.int32)
    finished = 0

    def start_turn(row, turn, carry="", carry_ids=()):
      row.turn, row.generated = turn, []
      row.pending.extend(carry_ids)
      row.pending.extend(tok.encode(carry + turn.text) if (carry + turn.text) else [])

    def refill(i):
      nonlocal finished
      row = rows[i]
      if row.episode is not None:
        finished += 1
        if progress:
          progress(finished)
      row.episode, row.pending, row.generated, row.turn = None, [], [], None
      for e, episode in queue:
        row.episode, row.length, keys[i] = episode, 0, starts[e]
        start_turn(row, episode.start())
        if row.pending:
          return
        episode.abort("empty start text")
        finished += 1
        row.episode = None

    for i in range(batch):
      refill(i)
    while any(r.episode is not None for r in rows):
      # 1. Feed rows with pending text (new episodes, observations), one row per call in
      #    length-bucketed chunks.
      for i, r in enumerate(rows):
        while r.pending:
          chunk = bucket(min(len(r.pending), max(self.feed_buckets)), self.feed_buckets)
          n = min(len(r.pending), chunk)
          if r.length + n >= room:
            r.episode.abort(f"context full ({self.max_length} tokens)")
            refill(i)  # the row's next episode (if any) is fed by this loop
            continue
          tokens = np.zeros((1, chunk), np.int32)
          tokens[0, :n], r.pending = r.pending[:n], r.pending[n:]
          segments = (np.arange(chunk) < n).astype(np.int32)[None]
          positions = (base + r.length + np.arange(chunk, dtype=np.int32))[None]
          out, key, cache = self._feed(self.params, cache, prefix, np.int32(i), tokens, positions,
                                       segments, np.int32(r.length), np.int32(n - 1), keys[i],
                                       sampling=sampling)
          r.length += n
          next_token[i] = int(out)
          if not r.pending:  # only the draw after a row's last chunk is used
            keys[i] = np.asarray(key)
          self.stats["feed_calls"] += 1
          self.stats["fed_tokens"] += n
      # 2. Decode one token for every generating row; rows that stop hand over to their episode.
      active = np.array([r.episode is not None and not r.pending for r in rows])
      if not active.any():
        continue
      for i, r in enumerate(rows):
        if active[i]:
          yield r.episode, int(next_token[i])
          self._accept(r, int(next_token[i]), i, start_turn, refill, room)
      active = np.array([r.episode is not None and not r.pending for r in rows])
      if not active.any():
        continue
      # Rows without an episode write at slot 0; a row waiting to be fed, at its next (unfilled) slot.
      index = np.array([r.length if r.episode is not None else 0 for r in rows], np.int32)
      tokens = np.where(active, next_token, 0).astype(np.int32)
      span = min(-(-(int(index.max()) + 1) // self.decode_span) * self.decode_span, cache_slots)
      out, new_keys, cache = self._decode(self.params, cache, prefix, tokens, base + index, index,
                                          active, span, keys, sampling=sampling)
      self.stats["decode_steps"] += 1
      for i, r in enumerate(rows):
        if active[i]:
          r.length += 1
      next_token = np.asarray(out).copy()
      keys = np.where(active.reshape((-1,) + (1,) * (keys.ndim - 1)), np.asarray(new_keys), keys)

  def _accept(self, row, token, i, start_turn, refill, room):
    """Takes a row's next token (not yet in the cache); ends the turn on EOS, a stop
    string, the turn's budget or a full context."""
    tok, turn = self.tokenizer, row.turn
    if token != tok.eos_id:
      row.generated.append(token)
    text = tok.decode(row.generated)
    cut = min((text.find(s) for s in turn.stop if s in text), default=-1)
    full = row.length + 1 >= room
    if token != tok.eos_id and cut < 0 and len(row.generated) < turn.max_new_tokens and not full:
      return  # keep generating; the token is written by the next decode step
    if cut >= 0:
      text = text[:cut]
    # Keep the generated tokens whose text lies inside the kept completion (the newest one is not
    # in the cache yet: it is fed as an id) and re-feed the rest of it as text before the next turn. Slots past
    # row.length are stale but harmless: a query at slot q sees only slots <= q, and those are
    # rewritten, in order, before it.
    kept, carry = self._split_kept(row.generated, text)
    in_cache = len(row.generated) - (token != tok.eos_id)
    row.length -= in_cache - min(kept, in_cache)
    uncached = row.generated[min(kept, in_cache):kept]  # the newest token, when it is kept
    if full and cut < 0:
      row.episode.abort(f"context full ({self.max_length} tokens)")
      refill(i)
      return
    self.stats["generated_tokens"] += len(row.generated)
    following = row.episode.step(text)
    if following is None:
      refill(i)
    else:
      start_turn(row, following, carry, uncached)

  def _split_kept(self, ids, text):
    """(k, carry): the longest prefix ids[:k] whose decoded text is a prefix of `text`, and the
    rest of `text` after it."""
    tok = self.tokenizer
    k = len(ids)
    while k > 0:
      head = tok.decode(ids[:k])
      if text.startswith(head):
        return k, text[len(head):]
      k -= 1
    return 0, text


class OneTurn:
  """A single-turn episode: prompt in, completion out."""

  def __init__(self, turn):
    self.turn, self.completion = turn, ""

  def start(self):
    return self.turn

  def step(self, completion):
    self.completion = completion

  def abort(self, reason):
    self.completion = ""
