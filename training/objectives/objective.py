"""What an objective is: the record each module in training/objectives/ fills in (see __init__.py).

Only `name`, `loss` and `normaliser` are required; every hook has the default most objectives
want. Losses return sums over the batch ({"objective", "loss", "weight", ...metrics}); the train
step divides by the whole batch's `normaliser` (tokens or pairs), so gradient accumulation is
exact (training/train_step.py).
"""

import dataclasses
from typing import Any
from collections.abc import Callable

import jax.numpy as jnp


@dataclasses.dataclass
class Run:
  """What an objective's data hooks may read beyond the config: built by train.py."""
  config: Any
  tokenizer: Any
  process_index: int
  process_count: int
  mesh: Any
  graphdef: Any  # the trained model's
  to_global: Callable  # local numpy batch -> global arrays laid out for the step
  reference: tuple | None = None  # (graphdef, params) of the frozen reference, when needs_reference
  reward_model: tuple | None = None  # (graphdef, params) of config.reward_model, when loaded


def token_count(batch):
  """Normaliser of per-token losses: the tokens with loss weight."""
  return jnp.maximum(jnp.sum(batch["loss_weights"]), 1.0)


def real_pairs(batch):
  """[pairs] 1 for a pair of rows (chosen, rejected, ...), 0 for the empty padding pairs of a last
  held-out batch."""
  return (jnp.sum(batch["loss_weights"][0::2], axis=1) > 0).astype(jnp.float32)


def pair_count(batch):
  """Normaliser of per-pair losses."""
  return jnp.maximum(jnp.sum(real_pairs(batch)), 1.0)


def _no_check(config, process_count):
  del config, process_count


def loss_eval_step(objective, graphdef, loss_fn, reference, token_bytes):
  """The default eval step: the training loss and its metrics on held-out data, without dropout."""
  del objective, token_bytes
  return lambda params, batch: loss_fn(graphdef, params, batch, reference=reference)


def mean_metrics(total):
  """Held-out sums -> {"eval_<metric>": per-weight mean}."""
  weight = max(float(total["weight"]), 1.0)
  return {f"eval_{k}": float(v / weight) for k, v in total.items() if k not in ("objective", "weight")}


@dataclasses.dataclass(frozen=True)
class Objective:
  name: str
  loss: Callable  # (graphdef, params, batch, rng=None, reference=None, **settings) -> sums
  normaliser: Callable  # batch -> the divisor of the summed objective (token_count, pair_count)
  settings: Callable = lambda config: {}  # config -> the loss's keyword settings
  batch_fields: tuple = ()  # float32 per-token batch fields beyond the language-model ones
  rows_per_example: int = 1  # rows a micro-batch split keeps together (2: a (chosen, rejected) pair)
  config_section: Callable | None = None  # () -> ConfigDict of config.<name>'s fields and defaults
  check: Callable = _no_check  # (config, process_count) -> None; raises config.ConfigError
  finetuning: Callable = lambda config: True  # whether the run reads config.finetune (and its template)
  load_data: Callable = lambda config, tokenizer: None  # -> finetune.Data or None; fails on bad files
  train_iterator: Callable = None  # (data, Run) -> iterator of local numpy batches (grain-checkpointable)
  eval_batches: Callable = lambda data, run: []  # (data, Run) -> fixed held-out local batches
  eval_step: Callable = loss_eval_step  # (objective, graphdef, loss_fn, reference, token_bytes) -> fn
  eval_metrics: Callable = mean_metrics  # summed held-out eval_step outputs -> {name: value}
  report: Callable = lambda last, eval_batches: []  # final metrics, eval batches -> lines printed
  needs_reference: bool = False  # the frozen source model is the reference (config.init_from)
  reference_in_step: Callable = lambda config: False  # the step reads the reference's params
  judged: bool = False  # a reward model judges its policy against the reference at evaluations
  on_policy: bool = False  # the train iterator samples the current policy (set_policy before next)
  samples: Callable = lambda config: not config.model.score_head  # print a sample at the end

  def bound_loss(self, config):
    """The loss with its settings from `config`."""
    settings = self.settings(config)
    return lambda graphdef, params, batch, rng=None, reference=None: self.loss(
        graphdef, params, batch, rng=rng, reference=reference, **settings)


def pair_report(last, eval_batches):
  """The final line of a pairwise objective (reward, dpo): held-out accuracy and loss."""
  if "eval_accuracy" not in last:
    return []
  pairs = sum(1 for b in eval_batches for w in b["loss_weights"][0::2] if w.any())
  return [f"held-out: pairwise accuracy {last['eval_accuracy']:.4f}, loss {last['eval_loss']:.4f} over {pairs} pairs"]
