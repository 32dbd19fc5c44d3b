"""The train and eval steps. Only the loss changes between pretraining and later stages.

A loss function maps (graphdef, params, batch, rng=, reference=) to sums over the batch:
{"objective": scalar to minimise, "loss": what is logged as the loss, "weight": tokens or pairs
counted, ...other sums logged as metrics}. Dividing by the whole batch's normaliser (tokens for
lm / ppo, pairs for reward / dpo) after summing makes gradient accumulation exact: the same update
as one big batch. OBJECTIVES maps `config.objective` to its loss and batch fields.
"""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from models.partitioning import constrain
from training import objectives


def lm_loss(graphdef, params, batch, z_loss=0.0, rng=None, reference=None):
  """Next-token cross-entropy (+ PaLM's z-loss) summed over the tokens with loss_weights 1."""
  del reference
  model = nnx.merge(graphdef, params)
  logits, _ = model(batch["inputs"], batch["positions"], batch["segment_ids"], rng=rng)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, batch["targets"][..., None], axis=-1)[..., 0]
  weights = batch["loss_weights"]
  nll = jnp.sum((log_z - target_logit) * weights)
  z = jnp.sum(jnp.square(log_z) * weights)
  return dict(objective=nll + z_loss * z, loss=nll, z_loss=z, weight=jnp.sum(weights))


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


def _pairs(x):
  """Rows interleaved (chosen, rejected, chosen, ...) -> (chosen, rejected)."""
  return x[0::2], x[1::2]


def _real_pairs(batch):
  """[pairs] 1 for a pair, 0 for the empty padding pairs of a last held-out batch."""
  return (jnp.sum(batch["loss_weights"][0::2], axis=1) > 0).astype(jnp.float32)


def reward_loss(graphdef, params, batch, rng=None, reference=None):
  """Bradley-Terry on the scalar head's score at each reply's last token; rows come in
  (chosen, rejected) pairs. Sums over pairs: loss, accuracy, margin, chosen score."""
  del reference
  chosen, rejected = _pairs(reply_scores(graphdef, params, batch, rng))
  loss, correct = objectives.bradley_terry(chosen, rejected)
  real = _real_pairs(batch)
  return dict(objective=jnp.sum(loss * real), loss=jnp.sum(loss * real), accuracy=jnp.sum(correct * real),
              margin=jnp.sum((chosen - rejected) * real), chosen_score=jnp.sum(chosen * real),
              weight=jnp.sum(real))


def reply_logprobs(graphdef, params, batch, rng=None):
  """[rows] summed log-probability of each row's trained tokens."""
  logits, _ = nnx.merge(graphdef, params)(batch["inputs"], batch["positions"], batch["segment_ids"], rng=rng)
  return jnp.sum(objectives.token_logprobs(logits, batch["targets"]) * batch["loss_weights"], axis=1)


def dpo_loss(graphdef, params, batch, beta=0.1, rng=None, reference=None):
  """DPO on (chosen, rejected) row pairs. The reference log-probabilities come from the batch
  ("ref_logprobs", per token, precomputed) or, given `reference` = (graphdef, params), from a
  forward pass of the frozen reference here."""
  policy = reply_logprobs(graphdef, params, batch, rng)
  if reference is None:
    ref = jnp.sum(batch["ref_logprobs"] * batch["loss_weights"], axis=1)
  else:
    ref = jax.lax.stop_gradient(reply_logprobs(*reference, batch))
  loss, chosen_reward, rejected_reward = objectives.dpo(*_pairs(policy), *_pairs(ref), beta)
  real = _real_pairs(batch)
  return dict(objective=jnp.sum(loss * real), loss=jnp.sum(loss * real),
              accuracy=jnp.sum((chosen_reward > rejected_reward) * real),
              margin=jnp.sum((chosen_reward - rejected_reward) * real),
              chosen_reward=jnp.sum(chosen_reward * real), rejected_reward=jnp.sum(rejected_reward * real),
              weight=jnp.sum(real))


def ppo_loss(graphdef, params, batch, clip=0.2, value_clip=0.2, value_coef=0.1, rng=None, reference=None):
  """Clipped PPO policy loss + value_coef * clipped value loss on the response tokens of a
  rollout minibatch (fields from training/ppo.py: old_logprobs, old_values, advantages, returns)."""
  del reference
  model = nnx.merge(graphdef, params)
  features, _ = model.features(batch["inputs"], batch["positions"], batch["segment_ids"], rng=rng)
  logprobs = objectives.token_logprobs(model.logits(features), batch["targets"])
  values = model.scores(features)
  mask = batch["loss_weights"]
  tokens = jnp.sum(mask)
  policy_loss, clipped = objectives.ppo_policy_loss(logprobs, batch["old_logprobs"], batch["advantages"], mask, clip)
  value_loss = objectives.ppo_value_loss(values, batch["old_values"], batch["returns"], mask, value_clip)
  approx_kl = objectives.masked_mean(0.5 * jnp.square(logprobs - batch["old_logprobs"]), mask)
  # The objectives return means over this (micro-)batch's tokens; sums keep accumulation exact.
  return dict(objective=(policy_loss + value_coef * value_loss) * tokens, loss=policy_loss * tokens,
              value_loss=value_loss * tokens, clip_fraction=clipped * tokens, approx_kl=approx_kl * tokens,
              weight=tokens)


def token_count(batch):
  return jnp.maximum(jnp.sum(batch["loss_weights"]), 1.0)


def pair_count(batch):
  return jnp.maximum(jnp.sum(_real_pairs(batch)), 1.0)


# objective -> (loss function, extra per-token batch fields beyond LM_FIELDS, normaliser)
LM_FIELDS = ("inputs", "targets", "segment_ids", "positions", "loss_weights")
OBJECTIVES = dict(
    lm=(lm_loss, (), token_count),
    reward=(reward_loss, (), pair_count),
    dpo=(dpo_loss, ("ref_logprobs",), pair_count),
    ppo=(ppo_loss, ("old_logprobs", "old_values", "advantages", "returns"), token_count),
)


def combine(*trees):
  """Nested dicts -> one (later trees add keys; a fine-tune's trainable and frozen parts)."""
  out = {}
  for tree in trees:
    for key, value in tree.items():
      out[key] = combine(out[key], value) if isinstance(value, dict) and key in out else value
  return out


def make_train_step(graphdef, tx, schedule, loss_fn, accum_steps=1, normaliser=token_count,
                    dropout_seed=None, reference_graphdef=None):
  """train_step(state, batch, frozen) -> (state, metrics); state = {"step", "params", "opt_state"}
  with params the trained weights; frozen = {"base": weights not trained (LoRA's base model), and
  "reference": the frozen reference model's params when the loss needs one on the fly (DPO)}.
  dropout_seed: None, or the seed of the LoRA-dropout keys (one per step and micro-batch)."""

  def grads_and_sums(params, frozen, batch, total_weight, rng):
    reference = (reference_graphdef, frozen["reference"]) if "reference" in frozen else None

    def objective(p, b):
      sums = loss_fn(graphdef, combine(frozen.get("base", {}), p), b, rng=rng, reference=reference)
      return sums["objective"] / total_weight, sums
    (_, sums), grads = jax.value_and_grad(objective, has_aux=True)(params, batch)
    return grads, sums

  def train_step(state, batch, frozen):
    params = state["params"]
    total_weight = normaliser(batch)
    rng = None if dropout_seed is None else jax.random.fold_in(jax.random.key(dropout_seed), state["step"])
    if accum_steps == 1:
      grads, sums = grads_and_sums(params, frozen, batch, total_weight, rng)
    else:
      # Micro-batch i takes rows i, i + A, ... (pairs i, i + A, ... for pair losses): each device
      # keeps its own rows (no relayout).
      group = 2 if normaliser is pair_count else 1  # (chosen, rejected) rows stay together

      def split(x):
        x = x.reshape(x.shape[0] // (accum_steps * group), accum_steps, group, *x.shape[1:]).swapaxes(0, 1)
        return constrain(x.reshape(accum_steps, -1, *x.shape[3:]), (None, "batch", "length"))
      micro = jax.tree.map(split, batch)

      def body(carry, xs):
        i, mb = xs
        micro_rng = None if rng is None else jax.random.fold_in(rng, i)
        grads, sums = grads_and_sums(params, frozen, mb, total_weight, micro_rng)
        return jax.tree.map(jnp.add, carry, (grads, sums)), None
      first = jax.tree.map(lambda x: x[0], micro)
      zeros = jax.eval_shape(grads_and_sums, params, frozen, first, total_weight, rng)
      zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros)
      (grads, sums), _ = jax.lax.scan(body, zeros, (jnp.arange(accum_steps), micro))
    updates, opt_state = tx.update(grads, state["opt_state"], params)
    new_state = dict(step=state["step"] + 1, params=optax.apply_updates(params, updates), opt_state=opt_state)
    metrics = {k: v / total_weight for k, v in sums.items() if k not in ("objective", "weight")}
    metrics.update(
        grad_norm=optax.tree.norm(grads),
        param_norm=optax.tree.norm(new_state["params"]),  # checked before a checkpoint is written
        learning_rate=schedule(state["step"]),
        tokens=jnp.sum(batch["loss_weights"]),
    )
    return new_state, metrics

  return train_step


def make_eval_step(graphdef, token_bytes):
  """eval_step(params, batch) -> sums of nll, counted tokens and their UTF-8 bytes (for bits-per-byte)."""

  def eval_step(params, batch):
    sums = lm_loss(graphdef, params, batch)
    bytes_ = jnp.sum(jnp.take(token_bytes, batch["targets"]) * batch["loss_weights"])
    return dict(nll=sums["loss"], weight=sums["weight"], bytes=bytes_)

  return eval_step
