"""Our decoder behind the interface tasks and agents use (eval/api.py).

Log-likelihoods are computed the way lm-evaluation-harness computes them (continuation tokens =
encode(context + continuation) minus encode(context), trailing context spaces moved onto the
continuation), in batches padded to a few length buckets, so a whole benchmark compiles a handful
of shapes. Rows are sharded over the mesh's batch axes; params are laid out by the model's
logical axis rules (replicated on one device).
"""

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import engine as engine_lib
from models import partitioning, transformer
from training import mesh as mesh_lib, metrics as metrics_lib

LENGTH_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192)


class Progress:
  """A one-line progress bar on stderr, redrawn in place (training/metrics.py's bar)."""

  def __init__(self, total, desc):
    self.total, self.desc, self.done = total, desc, 0

  def update(self, n=1):
    self.done += n
    if self.total:
      bar = metrics_lib.progress_bar(self.done, self.total, width=30)
      sys.stderr.write(f"\r{self.desc:<24} {bar} {self.done}/{self.total}")
      if self.done >= self.total:
        sys.stderr.write("\n")
      sys.stderr.flush()


class LM:
  """Scoring and generation with our Decoder (graphdef + params) and a tokenizer."""

  def __init__(self, graphdef, params, tokenizer, name, mesh=None, max_length=2048,
               tokens_per_batch=8192, agent_batch_size=16, rules=partitioning.DEFAULT_RULES,
               template=None):
    """template: the chat template the model answers in (sft.model_template), None for plain text."""
    self.graphdef, self.tokenizer, self.name = graphdef, tokenizer, name
    self.template = template
    self.cfg = nnx.merge(graphdef, params).cfg
    self.mesh = mesh or mesh_lib.make_mesh(dict(data=-1, fsdp=1, tensor=1))
    self.rules = rules
    self.max_length, self.tokens_per_batch = max_length, tokens_per_batch
    self.agent_batch_size = agent_batch_size
    axes = transformer.param_axes(self.cfg)
    self.param_shardings = jax.tree.map(
        lambda names, x: partitioning.sharding_for(names, x.shape, rules, self.mesh), axes, params,
        is_leaf=lambda n: isinstance(n, tuple))
    self._engines = {}  # batch size -> Engine, compiled once and kept for later set_params
    self.set_params(params)
    batch_axes = tuple(a for a in ("data", "fsdp") if self.mesh.shape[a] > 1)
    self.rows_multiple = int(np.prod([self.mesh.shape[a] for a in batch_axes])) or 1
    self.batch_sharding = jax.sharding.NamedSharding(
        self.mesh, jax.sharding.PartitionSpec(batch_axes or None))

  def __hash__(self):
    return id(self)

  def set_params(self, params):
    """New weights for the same model (the next evaluation during training): nothing recompiles."""
    self.params = jax.device_put(params, self.param_shardings)
    for engine in self._engines.values():
      engine.params = self.params

  # ---- log-likelihood --------------------------------------------------------------------------

  def _split(self, context, continuation):
    """lm-eval's request encoding: (context ids, continuation ids)."""
    stripped = len(context) - len(context.rstrip(" "))
    if stripped:
      context, continuation = context[:-stripped], context[-stripped:] + continuation
    whole = self.tokenizer.encode(context + continuation)
    context_ids = self.tokenizer.encode(context)
    continuation_ids = whole[len(context_ids):]
    if not context_ids:  # nothing to condition on: lm-eval starts from the end-of-text token
      context_ids = [self.tokenizer.eos_id]
    return context_ids, continuation_ids

  def loglikelihood(self, pairs, desc="loglikelihood"):
    sequences, single = [], {}
    for k, (context, continuation) in enumerate(pairs):
      context_ids, continuation_ids = self._split(context, continuation)
      if not continuation_ids:
        raise ValueError(f"continuation {continuation!r} encodes to no tokens")
      if len(continuation_ids) == 1:
        # One-token continuations of one context (MMLU's " A".." D", BoolQ's " yes"/" no") are
        # read off a single forward pass of the context: same numbers, a fraction of the work.
        single.setdefault(tuple(context_ids[-self.max_length:]), []).append((k, continuation_ids[0]))
        continue
      ids = (context_ids + continuation_ids)[-(self.max_length + 1):]
      sequences.append((k, ids, len(continuation_ids)))
    out = [None] * len(pairs)
    contexts = list(single)
    # A context scored with a dummy one-token target; _score also returns its next-token logprobs.
    scores = self._score([(ids, n) for _, ids, n in sequences] +
                         [(list(c) + [0], 1) for c in contexts], desc)
    for (k, _, _), (logprob, greedy, _) in zip(sequences, scores):
      out[k] = (float(logprob), bool(greedy))
    for c, (_, _, next_logprobs) in zip(contexts, scores[len(sequences):]):
      best = int(np.argmax(next_logprobs))
      for k, target in single[c]:
        out[k] = (float(next_logprobs[target]), target == best)
    return out

  def loglikelihood_rolling(self, texts, desc="loglikelihood_rolling"):
    """Whole-text log-likelihoods: disjoint windows of max_length tokens, each predicting all its
    tokens (the first window from the end-of-text token)."""
    sequences, owner = [], []
    for t, text in enumerate(texts):
      ids = [self.tokenizer.eos_id] + self.tokenizer.encode(text)
      for start in range(0, len(ids) - 1, self.max_length):
        window = ids[start:start + self.max_length + 1]
        sequences.append((window, len(window) - 1))
        owner.append(t)
    totals = np.zeros(len(texts))
    for t, (score, _, _) in zip(owner, self._score(sequences, desc)):
      totals[t] += score
    return [float(x) for x in totals]

  def _score(self, sequences, desc):
    """sequences: (ids, n) pairs scoring the last n of ids given the rest. Returns (logprob,
    greedy, next-token logprobs [V] at the last scored position) per sequence. Longest first, so
    the first batch shows the worst-case memory."""
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
    out = [None] * len(sequences)
    bar = Progress(len(sequences), desc)
    i = 0
    while i < len(order):
      length = engine_lib.bucket(len(sequences[order[i]][0]) - 1, LENGTH_BUCKETS)
      rows = max(1, self.tokens_per_batch // length)
      # Few rows left: a smaller power-of-two batch instead of padding rows (one more shape).
      rows = min(rows, 1 << (len(order) - i - 1).bit_length())
      rows = -(-rows // self.rows_multiple) * self.rows_multiple
      batch = order[i:i + rows]
      tokens = np.zeros((rows, length), np.int32)
      targets = np.zeros_like(tokens)
      weights = np.zeros((rows, length), np.float32)
      segments = np.zeros_like(tokens)
      for r, j in enumerate(batch):
        ids, n = sequences[j]
        m = len(ids) - 1
        tokens[r, :m], targets[r, :m], segments[r, :m] = ids[:-1], ids[1:], 1
        weights[r, m - n:m] = 1
      put = lambda x: jax.device_put(x, self.batch_sharding)
      last = put(np.maximum(segments.sum(axis=1) - 1, 0).astype(np.int32))
      logprob, greedy, next_logprobs = jax.device_get(self._score_batch(
          self.params, put(tokens), put(targets), put(weights), put(segments), last))
      for r, j in enumerate(batch):
        out[j] = (logprob[r], greedy[r], next_logprobs[r])
      bar.update(len(batch))
      i += rows
    return out

  @functools.partial(jax.jit, static_argnums=(0,))
  def _score_batch(self, params, tokens, targets, weights, segments, last):
    """[B, T] -> (summed target log-prob [B], all targets greedy [B]) over weighted positions,
    and the log-probs [B, V] of the token after position last [B]."""
    with partitioning.activation_sharding(self.mesh, self.rules):
      logits, _ = nnx.merge(self.graphdef, params)(tokens, segment_ids=segments)
    logz = jax.nn.logsumexp(logits, axis=-1)
    target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    logprob = jnp.sum((target_logits - logz) * weights, axis=-1)
    is_max = jnp.argmax(logits, axis=-1) == targets
    greedy = jnp.all(is_max | (weights == 0), axis=-1)
    final = jnp.take_along_axis(logits, last[:, None, None], axis=1)[:, 0]
    return logprob, greedy, jax.nn.log_softmax(final, axis=-1)

  # ---- generation ------------------------------------------------------------------------------

  def engine(self, batch_size=None):
    batch_size = batch_size or self.agent_batch_size
    if batch_size not in self._engines:
      self._engines[batch_size] = engine_lib.Engine(self.graphdef, self.params, self.tokenizer,
                                                    batch_size=batch_size, max_length=self.max_length)
    return self._engines[batch_size]

  def run_episodes(self, prefix, episodes, desc="episodes", total=None):
    episodes = list(episodes)
    bar = Progress(total or len(episodes), desc)
    return self.engine().run(prefix, episodes, progress=lambda n: bar.update())

  def generate(self, prompts, stop=(), max_new_tokens=256, prefix="", desc="generate"):
    bar = Progress(len(prompts), desc)
    return self.engine().generate(prompts, stop, max_new_tokens, prefix, progress=lambda n: bar.update())
