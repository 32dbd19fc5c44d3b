"""The train and eval steps. Only the loss changes between pretraining and later stages.

A loss function maps (graphdef, params, batch) to sums over the batch: {"objective": scalar
to minimise, summed over tokens, "weight": tokens counted, ...other sums for metrics}. Dividing by
the whole batch's weight after summing makes gradient accumulation exact: the same update as one
big batch.
"""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from models.partitioning import constrain


def lm_loss(graphdef, params, batch, z_loss=0.0):
  """Next-token cross-entropy (+ PaLM's z-loss) summed over the tokens with loss_weights 1."""
  model = nnx.merge(graphdef, params)
  logits, _ = model(batch["inputs"], batch["positions"], batch["segment_ids"])
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, batch["targets"][..., None], axis=-1)[..., 0]
  weights = batch["loss_weights"]
  nll = jnp.sum((log_z - target_logit) * weights)
  z = jnp.sum(jnp.square(log_z) * weights)
  return dict(objective=nll + z_loss * z, nll=nll, z=z, weight=jnp.sum(weights))


def make_train_step(graphdef, tx, schedule, loss_fn, accum_steps=1):
  """train_step(state, batch) -> (state, metrics); state = {"step", "params", "opt_state"}."""

  def grads_and_sums(params, batch, total_weight):
    def objective(p, b):
      sums = loss_fn(graphdef, p, b)
      return sums["objective"] / total_weight, sums
    (_, sums), grads = jax.value_and_grad(objective, has_aux=True)(params, batch)
    return grads, sums

  def train_step(state, batch):
    params = state["params"]
    total_weight = jnp.maximum(jnp.sum(batch["loss_weights"]), 1.0)
    if accum_steps == 1:
      grads, sums = grads_and_sums(params, batch, total_weight)
    else:
      # Micro-batch i takes rows i, i + A, ...: each device keeps its own rows (no relayout).
      def split(x):
        x = x.reshape(x.shape[0] // accum_steps, accum_steps, *x.shape[1:]).swapaxes(0, 1)
        return constrain(x, (None, "batch", "length"))
      micro = jax.tree.map(split, batch)

      def body(carry, mb):
        grads, sums = grads_and_sums(params, mb, total_weight)
        return jax.tree.map(jnp.add, carry, (grads, sums)), None
      zeros = jax.eval_shape(grads_and_sums, params, jax.tree.map(lambda x: x[0], micro), total_weight)
      zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros)
      (grads, sums), _ = jax.lax.scan(body, zeros, micro)
    updates, opt_state = tx.update(grads, state["opt_state"], params)
    new_state = dict(step=state["step"] + 1, params=optax.apply_updates(params, updates), opt_state=opt_state)
    metrics = dict(
        loss=sums["nll"] / total_weight,
        z_loss=sums["z"] / total_weight,
        grad_norm=optax.tree.norm(grads),
        param_norm=optax.tree.norm(new_state["params"]),  # checked before a checkpoint is written
        learning_rate=schedule(state["step"]),
        tokens=sums["weight"],
    )
    return new_state, metrics

  return train_step


def make_eval_step(graphdef, token_bytes):
  """eval_step(params, batch) -> sums of nll, counted tokens and their UTF-8 bytes (for bits-per-byte)."""

  def eval_step(params, batch):
    sums = lm_loss(graphdef, params, batch)
    bytes_ = jnp.sum(jnp.take(token_bytes, batch["targets"]) * batch["loss_weights"])
    return dict(nll=sums["nll"], weight=sums["weight"], bytes=bytes_)

  return eval_step
