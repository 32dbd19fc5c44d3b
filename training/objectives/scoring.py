"""Forward passes the objectives (and the judge in eval/judge.py) share: what a model says about a
batch of (prompt + reply) rows whose loss_weights mark the reply tokens."""

import jax
import jax.numpy as jnp
from flax import nnx

from training.objectives import formulas


def last_reply_index(weights):
  """[rows] input position of each row's last trained token (its score is the reward): the
  position after the last weighted target. weights: [rows, T]."""
  positions = jnp.arange(weights.shape[1])
  return jnp.max(jnp.where(weights > 0, positions + 1, 0), axis=1)


def reply_scores(graphdef, params, batch, rng=None):
  """[rows] the scalar head's score at each row's last trained token (a reply's reward)."""
  model = nnx.merge(graphdef, params)
  features, _ = model.features(batch["inputs"], batch["positions"], batch["segment_ids"], rng=rng)
  index = last_reply_index(batch["loss_weights"])
  return jnp.take_along_axis(model.scores(features), index[:, None], axis=1)[:, 0]


def reply_logprobs(graphdef, params, batch, rng=None):
  """[rows] summed log-probability of each row's trained tokens."""
  logits, _ = nnx.merge(graphdef, params)(batch["inputs"], batch["positions"], batch["segment_ids"], rng=rng)
  return jnp.sum(formulas.token_logprobs(logits, batch["targets"]) * batch["loss_weights"], axis=1)


def token_outputs(graphdef, params, batch, rng=None):
  """Per-target log-probs [B, T] and values [B, T] (zeros without a scalar head)."""
  model = nnx.merge(graphdef, params)
  features, _ = model.features(batch["inputs"], batch["positions"], batch["segment_ids"], rng=rng)
  logprobs = formulas.token_logprobs(model.logits(features), batch["targets"])
  values = model.scores(features) if model.cfg.score_head else jnp.zeros_like(logprobs)
  return logprobs, values


_JITTED = {}


def jitted(fn, graphdef):
  """jax.jit of fn(graphdef, ...) with the graphdef closed over (it holds the model's ConfigDict,
  which is not hashable, so it cannot be a static argument); one per (fn, graphdef)."""
  key = (fn.__name__, id(graphdef))
  if key not in _JITTED:
    _JITTED[key] = (graphdef, jax.jit(lambda *args: fn(graphdef, *args)))  # keeps graphdef alive
  return _JITTED[key][1]


def policy_outputs(graphdef, params, batch):
  """Jitted token_outputs: per-target log-probs and values [B, T]."""
  return jitted(token_outputs, graphdef)(params, batch)


def reward_scores(graphdef, params, batch):
  """Jitted reply_scores: the reward model's score at each row's last trained token [B]."""
  return jitted(reply_scores, graphdef)(params, batch)
