"""lm: next-token cross-entropy. Pretraining on config.data's text, or SFT on the instruction /
chat rows of config.finetune.train_files (loss on the replies only)."""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from input_pipeline import finetune, loader
from training.objectives.objective import Objective, token_count


def loss(graphdef, params, batch, z_loss=0.0, rng=None, reference=None):
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


def make_eval_step(graphdef, token_bytes):
  """eval_step(params, batch) -> sums of nll, counted tokens and their UTF-8 bytes (for bits-per-byte)."""

  def eval_step(params, batch):
    sums = loss(graphdef, params, batch)
    bytes_ = jnp.sum(jnp.take(token_bytes, batch["targets"]) * batch["loss_weights"])
    return dict(nll=sums["loss"], weight=sums["weight"], bytes=bytes_)

  return eval_step


def _is_sft(config):
  return bool(config.finetune.train_files)


def _load_data(config, tokenizer):
  return finetune.load_examples(config, tokenizer) if _is_sft(config) else None


def _train_iterator(data, run):
  if data is None:
    return loader.make_train_iterator(run.config, run.tokenizer, run.process_index, run.process_count)
  return finetune.example_iterator(data.train, run.config, run.process_index, run.process_count)


def _eval_batches(data, run):
  if data is None:
    return loader.make_eval_batches(run.config, run.tokenizer, run.process_index, run.process_count)
  return finetune.example_batches(data.held_out, run.config, run.process_index, run.process_count)


def _eval_metrics(total):
  weight = max(float(total["weight"]), 1.0)
  return dict(eval_loss=float(total["nll"] / weight),
              eval_bpb=float(total["nll"] / math.log(2) / max(total["bytes"], 1)))


def _report(last, eval_batches):
  del eval_batches
  if "eval_bpb" not in last:
    return []
  return [f"held-out: loss {last['eval_loss']:.4f} nats/token, {last['eval_bpb']:.4f} bits/byte"]


OBJECTIVE = Objective(
    name="lm",
    loss=loss,
    normaliser=token_count,
    settings=lambda config: dict(z_loss=config.model.z_loss),
    finetuning=_is_sft,
    load_data=_load_data,
    train_iterator=_train_iterator,
    eval_batches=_eval_batches,
    eval_step=lambda objective, graphdef, loss_fn, reference, token_bytes: make_eval_step(graphdef, token_bytes),
    eval_metrics=_eval_metrics,
    report=_report,
)
