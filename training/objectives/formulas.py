"""The math the objectives share, as pure functions on arrays (jit- and grad-friendly).

Reward model (InstructGPT): pairwise Bradley-Terry loss -log sigmoid(r_chosen - r_rejected).
DPO (Rafailov et al. 2023): -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) with pi/ref the
  summed response log-probabilities under the policy and the frozen reference.
PPO RLHF (InstructGPT / TRL semantics): the reward model's score at a response's last token minus
  a per-token KL penalty kl_coef * (log pi - log ref); advantages by GAE(gamma, lambda) against a
  value head; clipped policy and value losses; an adaptive KL coefficient (Ziegler et al. 2019).

Shapes: B sequences, T response tokens; `mask` [B, T] is 1 on real response tokens. Sums and
means over masked tokens only.
"""

import jax
import jax.numpy as jnp


def token_logprobs(logits, targets):
  """log p(targets) [B, T] from logits [B, T, V] (float32 softmax)."""
  logits = logits.astype(jnp.float32)
  picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return picked - jax.nn.logsumexp(logits, axis=-1)


def masked_mean(x, mask):
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def bradley_terry(reward_chosen, reward_rejected):
  """Per-pair loss [B] and whether the chosen response scored higher [B]."""
  margin = reward_chosen - reward_rejected
  return -jax.nn.log_sigmoid(margin), (margin > 0).astype(jnp.float32)


def dpo(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
  """Per-pair DPO loss [B] and the implicit rewards beta * (log pi - log ref) of both responses.
  Inputs: summed response log-probabilities [B]."""
  chosen_reward = beta * (policy_chosen - reference_chosen)
  rejected_reward = beta * (policy_rejected - reference_rejected)
  loss = -jax.nn.log_sigmoid(chosen_reward - rejected_reward)
  return loss, chosen_reward, rejected_reward


def kl_penalised_rewards(score, logprobs, reference_logprobs, mask, kl_coef):
  """Per-token rewards [B, T]: -kl_coef * (log pi - log ref) on every response token, plus the
  reward model's score [B] on the last one. Also returns the per-token KL estimate [B, T]."""
  kl = (logprobs - reference_logprobs) * mask
  last = jnp.argmax(mask * jnp.arange(1, mask.shape[1] + 1), axis=1)  # a response may follow a prompt
  at_last = jax.nn.one_hot(last, mask.shape[1], dtype=kl.dtype) * mask
  return -kl_coef * kl + score[:, None] * at_last, kl


def gae(rewards, values, mask, gamma, lam):
  """Generalised advantage estimation over response tokens (the value after the last token is 0).
  rewards, values, mask [B, T] -> (advantages, returns = advantages + values), both [B, T]."""
  next_values = jnp.concatenate([values[:, 1:] * mask[:, 1:], jnp.zeros_like(values[:, :1])], axis=1)
  deltas = (rewards + gamma * next_values - values) * mask

  def backwards(carry, xs):
    delta, m = xs
    advantage = delta + gamma * lam * carry * m
    return advantage, advantage

  _, advantages = jax.lax.scan(backwards, jnp.zeros(rewards.shape[0], rewards.dtype),
                               (deltas.T, mask.T), reverse=True)
  advantages = advantages.T * mask
  return advantages, (advantages + values) * mask


def whiten(x, mask):
  """(x - mean) / std over masked entries, as TRL does to advantages."""
  mean = masked_mean(x, mask)
  variance = masked_mean(jnp.square(x - mean), mask)
  return (x - mean) * jax.lax.rsqrt(variance + 1e-8) * mask


def ppo_policy_loss(logprobs, old_logprobs, advantages, mask, clip):
  """Clipped surrogate: mean of max(-A r, -A clip(r, 1 - clip, 1 + clip)), r = pi / pi_old.
  Returns (loss, fraction of tokens where the clipped term was taken)."""
  ratio = jnp.exp(logprobs - old_logprobs)
  unclipped = -advantages * ratio
  clipped = -advantages * jnp.clip(ratio, 1.0 - clip, 1.0 + clip)
  loss = masked_mean(jnp.maximum(unclipped, clipped), mask)
  return loss, masked_mean((clipped > unclipped).astype(jnp.float32), mask)


def ppo_value_loss(values, old_values, returns, mask, clip):
  """0.5 * mean of max((v - R)^2, (v_old + clip(v - v_old, -clip, clip) - R)^2)."""
  clipped_values = old_values + jnp.clip(values - old_values, -clip, clip)
  loss = jnp.maximum(jnp.square(values - returns), jnp.square(clipped_values - returns))
  return 0.5 * masked_mean(loss, mask)


def adaptive_kl_coef(kl_coef, observed_kl, target_kl, horizon, num_samples):
  """Ziegler et al.'s proportional controller: e = clip(KL / target - 1, -0.2, 0.2);
  kl_coef *= 1 + e * n / horizon."""
  error = min(max(observed_kl / target_kl - 1.0, -0.2), 0.2)
  return kl_coef * (1.0 + error * num_samples / horizon)
