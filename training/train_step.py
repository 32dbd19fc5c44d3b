"""The update step every objective shares: one shape with a pluggable loss.

A loss maps (graphdef, params, batch, rng=, reference=) to sums over the batch: {"objective":
scalar to minimise, "loss": what is logged as the loss, "weight": tokens or pairs counted, ...other
sums logged as metrics} (training/objectives/). Dividing by the whole batch's normaliser (tokens
for lm / ppo, pairs for reward / dpo) after summing makes gradient accumulation exact: the same
update as one big batch.
"""

import jax
import jax.numpy as jnp
import optax

from models.partitioning import constrain


def combine(*trees):
  """Nested dicts -> one (later trees add keys; a fine-tune's trainable and frozen parts)."""
  out = {}
  for tree in trees:
    for key, value in tree.items():
      out[key] = combine(out[key], value) if isinstance(value, dict) and key in out else value
  return out


def make_train_step(graphdef, tx, schedule, loss_fn, normaliser, accum_steps=1, rows_per_example=1,
                    dropout_seed=None, reference_graphdef=None):
  """train_step(state, batch, frozen) -> (state, metrics); state = {"step", "params", "opt_state"}
  with params the trained weights; frozen = {"base": weights not trained (LoRA's base model), and
  "reference": the frozen reference model's params when the loss needs one on the fly (DPO)}.
  normaliser: batch -> the divisor of the summed objective; rows_per_example: rows a micro-batch
  split keeps together (2: a preference pair's chosen and rejected rows).
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
      group = rows_per_example

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
