"""reward: a reward model (InstructGPT) trained with Bradley-Terry on preference pairs: its scalar
head scores each reply at its last token; the chosen reply should score higher."""

import jax.numpy as jnp

from input_pipeline import finetune, preference
from training.config import need
from training.objectives import formulas
from training.objectives.objective import Objective, pair_count, pair_report, real_pairs
from training.objectives.scoring import reply_scores


def loss(graphdef, params, batch, rng=None, reference=None):
  """Bradley-Terry on the scalar head's score at each reply's last token; rows come in
  (chosen, rejected) pairs. Sums over pairs: loss, accuracy, margin, chosen score."""
  del reference
  scores = reply_scores(graphdef, params, batch, rng)
  chosen, rejected = scores[0::2], scores[1::2]
  loss_, correct = formulas.bradley_terry(chosen, rejected)
  real = real_pairs(batch)
  return dict(objective=jnp.sum(loss_ * real), loss=jnp.sum(loss_ * real), accuracy=jnp.sum(correct * real),
              margin=jnp.sum((chosen - rejected) * real), chosen_score=jnp.sum(chosen * real),
              weight=jnp.sum(real))


def check_pairs(config):
  """What every objective trained on preference pairs needs (reward, dpo)."""
  ft = config.finetune
  need(ft.pairs_format in preference.READERS, "finetune.pairs_format", ft.pairs_format,
       f"one of {sorted(preference.READERS)} for objective {config.objective!r}")
  need(config.batch_size % (2 * config.grad_accum_steps) == 0, "batch_size", config.batch_size,
       "an even number of rows per micro-batch: each preference pair is two rows (chosen, rejected)")


def _check(config, process_count):
  del process_count
  check_pairs(config)
  need(config.model.score_head, "model.score_head", config.model.score_head,
       "True for a reward model (its scalar score)")


def pair_data_hooks(fields=()):
  """load_data / train_iterator / eval_batches of an objective trained on preference pairs."""
  return dict(
      load_data=finetune.load_pairs,
      train_iterator=lambda data, run: finetune.pair_iterator(
          data.train, run.config, run.process_index, run.process_count, extra_fields=fields),
      eval_batches=lambda data, run: finetune.pair_batches(
          data.held_out, run.config, run.process_index, run.process_count, fields)[:run.config.eval_batches or None])


OBJECTIVE = Objective(
    name="reward",
    loss=loss,
    normaliser=pair_count,
    rows_per_example=2,
    check=_check,
    report=pair_report,
    samples=lambda config: False,
    **pair_data_hooks(),
)
