"""ppo: RLHF with PPO (InstructGPT / TRL semantics) on prompts from config.finetune, rewarded by
config.reward_model, with a per-token KL penalty to the frozen model it starts from. Its data are
rollouts of the current policy (training/objectives/rollouts.py)."""

import jax.numpy as jnp
import ml_collections

from input_pipeline import finetune
from training.config import need
from training.objectives import formulas, rollouts
from training.objectives.objective import Objective, token_count
from training.objectives.scoring import token_outputs

FIELDS = ("old_logprobs", "old_values", "advantages", "returns")  # from rollouts.RolloutIterator


def config_section():
  c = ml_collections.ConfigDict()
  c.rollout_size = 16  # prompts per rollout; each is used `epochs` times in batch_size minibatches
  c.epochs = 2  # PPO epochs over each rollout
  c.max_new_tokens = 48  # response length cap
  c.temperature = 1.0  # rollout sampling
  c.top_k = 0
  c.top_p = 1.0
  c.kl_coef = 0.05  # per-token KL penalty to the reference
  c.adaptive_kl = False  # Ziegler et al.'s controller towards target_kl
  c.target_kl = 6.0  # nats per response
  c.kl_horizon = 10000  # samples
  c.gamma = 1.0  # GAE discount
  c.lam = 0.95  # GAE lambda
  c.whiten_advantages = True
  c.clip = 0.2  # policy ratio clip
  c.value_clip = 0.2  # value clip
  c.value_coef = 0.1  # value loss weight
  c.eval_prompts = 32  # held-out prompts for the win rate against the reference (0: none)
  return c


def loss(graphdef, params, batch, clip=0.2, value_clip=0.2, value_coef=0.1, rng=None, reference=None):
  """Clipped PPO policy loss + value_coef * clipped value loss on the response tokens of a
  rollout minibatch (fields from rollouts.py: old_logprobs, old_values, advantages, returns)."""
  del reference
  logprobs, values = token_outputs(graphdef, params, batch, rng)
  mask = batch["loss_weights"]
  tokens = jnp.sum(mask)
  policy_loss, clipped = formulas.ppo_policy_loss(logprobs, batch["old_logprobs"], batch["advantages"], mask, clip)
  value_loss = formulas.ppo_value_loss(values, batch["old_values"], batch["returns"], mask, value_clip)
  approx_kl = formulas.masked_mean(0.5 * jnp.square(logprobs - batch["old_logprobs"]), mask)
  # The formulas return means over this (micro-)batch's tokens; sums keep accumulation exact.
  return dict(objective=(policy_loss + value_coef * value_loss) * tokens, loss=policy_loss * tokens,
              value_loss=value_loss * tokens, clip_fraction=clipped * tokens, approx_kl=approx_kl * tokens,
              weight=tokens)


def _check(config, process_count):
  p, m = config.ppo, config.model
  need(bool(config.init_from), "init_from", config.init_from,
       "the model ppo starts from (it is also the frozen reference)")
  need(bool(config.reward_model), "reward_model", config.reward_model, "a reward model workdir for PPO")
  need(process_count == 1, "objective", "ppo", "a single-process run (rollouts are sampled on one host)")
  need(p.rollout_size % config.batch_size == 0, "ppo.rollout_size", p.rollout_size,
       f"a multiple of batch_size = {config.batch_size} (minibatches of one rollout)")
  per_rollout = p.epochs * p.rollout_size // config.batch_size
  need(config.checkpoint_every % per_rollout == 0, "checkpoint_every", config.checkpoint_every,
       f"a multiple of the {per_rollout} steps per rollout (ppo.epochs x rollout_size / batch_size): "
       "a checkpoint cannot hold half a rollout")
  need(config.total_steps % per_rollout == 0, "total_steps", config.total_steps,
       f"a multiple of the {per_rollout} steps per rollout")
  need(m.score_head, "model.score_head", m.score_head, "True for PPO (the value head)")
  need(p.max_new_tokens < config.seq_len, "ppo.max_new_tokens", p.max_new_tokens, f"< seq_len = {config.seq_len}")


def _train_iterator(data, run):
  prompts = finetune.prompt_iterator(data.train, run.config.ppo.rollout_size, run.config.seed,
                                     run.process_index, run.process_count)
  return rollouts.RolloutIterator(prompts, run.config, run.graphdef, run.reference, run.reward_model,
                                  run.tokenizer.eos_id, run.mesh)


OBJECTIVE = Objective(
    name="ppo",
    loss=loss,
    normaliser=token_count,
    settings=lambda config: dict(clip=config.ppo.clip, value_clip=config.ppo.value_clip,
                                 value_coef=config.ppo.value_coef),
    batch_fields=FIELDS,
    config_section=config_section,
    check=_check,
    load_data=lambda config, tokenizer: finetune.load_prompts(
        config, tokenizer, config.ppo.max_new_tokens, "ppo.max_new_tokens"),
    train_iterator=_train_iterator,
    needs_reference=True,
    judged=True,
    on_policy=True,
    samples=lambda config: True,  # the value head is a critic; the policy writes text
)
