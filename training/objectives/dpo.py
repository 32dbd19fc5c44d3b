"""dpo: Direct Preference Optimization (Rafailov et al. 2023) on preference pairs, against the
frozen model it starts from (config.init_from) as the reference. The reference's reply
log-probabilities are precomputed in one pass before training (dpo.reference=precomputed) or
computed in every step (on_the_fly)."""

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from input_pipeline import finetune
from models import partitioning
from training.config import need
from training.objectives import formulas, reward
from training.objectives.objective import Objective, pair_count, pair_report, real_pairs
from training.objectives.scoring import policy_outputs, reply_logprobs

FIELDS = ("ref_logprobs",)  # the reference's per-target log-probs (zeros when computed on the fly)


def config_section():
  c = ml_collections.ConfigDict()
  c.beta = 0.1  # strength of the implicit KL constraint to the reference
  c.reference = "precomputed"  # precomputed (one pass before training) or on_the_fly (per step)
  return c


def loss(graphdef, params, batch, beta=0.1, rng=None, reference=None):
  """DPO on (chosen, rejected) row pairs. The reference log-probabilities come from the batch
  ("ref_logprobs", per token, precomputed) or, given `reference` = (graphdef, params), from a
  forward pass of the frozen reference here."""
  policy = reply_logprobs(graphdef, params, batch, rng)
  if reference is None:
    ref = jnp.sum(batch["ref_logprobs"] * batch["loss_weights"], axis=1)
  else:
    ref = jax.lax.stop_gradient(reply_logprobs(*reference, batch))
  loss_, chosen_reward, rejected_reward = formulas.dpo(policy[0::2], policy[1::2], ref[0::2], ref[1::2], beta)
  real = real_pairs(batch)
  return dict(objective=jnp.sum(loss_ * real), loss=jnp.sum(loss_ * real),
              accuracy=jnp.sum((chosen_reward > rejected_reward) * real),
              margin=jnp.sum((chosen_reward - rejected_reward) * real),
              chosen_reward=jnp.sum(chosen_reward * real), rejected_reward=jnp.sum(rejected_reward * real),
              weight=jnp.sum(real))


def _check(config, process_count):
  reward.check_pairs(config)
  need(bool(config.init_from), "init_from", config.init_from,
       "the model dpo starts from (it is also the frozen reference)")
  need(config.dpo.reference in ("on_the_fly", "precomputed"), "dpo.reference", config.dpo.reference,
       "'on_the_fly' or 'precomputed'")
  if config.dpo.reference == "precomputed":
    need(process_count == 1, "dpo.reference", "precomputed",
         "'on_the_fly' in a multi-process run (the reference pass runs on one host)")


def _train_iterator(data, run):
  config, extra = run.config, None
  if config.dpo.reference == "precomputed":
    t0 = time.time()
    with partitioning.activation_sharding(run.mesh, tuple(config.logical_axis_rules)):
      logprobs = [np.asarray(policy_outputs(*run.reference, run.to_global(b))[0]).reshape(-1, 2, config.seq_len)
                  for b in finetune.pair_batches(data.train, config, extra_fields=FIELDS)]
    extra = dict(ref_logprobs=np.concatenate(logprobs)[:len(data.train)])
    print(f"reference log-probabilities of {len(data.train)} pairs precomputed in {time.time() - t0:.1f}s")
  return finetune.pair_iterator(data.train, config, run.process_index, run.process_count, extra, FIELDS)


OBJECTIVE = Objective(
    name="dpo",
    loss=loss,
    normaliser=pair_count,
    settings=lambda config: dict(beta=config.dpo.beta),
    batch_fields=FIELDS,
    rows_per_example=2,
    config_section=config_section,
    check=_check,
    report=pair_report,
    needs_reference=True,
    reference_in_step=lambda config: config.dpo.reference == "on_the_fly",
    judged=True,
    **dict(reward.pair_data_hooks(FIELDS), train_iterator=_train_iterator),
)
