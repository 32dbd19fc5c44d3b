"""A reward model's verdict on a policy against its baseline (the frozen reference): the win rate
train.py reports during DPO and PPO (`judge/...` metrics), on held-out prompts."""

import jax
import jax.numpy as jnp
import numpy as np

from training.objectives import rollouts, scoring


def compare(policy, baseline, reward, prompts, cfg, seq_len, eos_id, seed=0, batch_size=16):
  """`policy` against `baseline` (both (graphdef, params); the baseline is the frozen reference)
  on the same prompts, each answered by sampling with cfg's settings (temperature, top-k, top-p)
  and judged by `reward`: {"win_rate" (ties count half), both models' mean scores and response
  lengths, "kl": the policy's summed log pi - log ref over its own responses (an estimate of
  KL(policy || baseline) per response, nats)}."""
  out = dict(policy_score=[], baseline_score=[], policy_length=[], baseline_length=[], kl=[])
  for start in range(0, len(prompts), batch_size):
    chunk = prompts[start:start + batch_size]
    rng = jax.random.fold_in(jax.random.key(seed), start)
    for name, model in (("policy", policy), ("baseline", baseline)):
      batch, scores, lengths = rollouts.generate_and_score(model, reward, chunk, cfg, seq_len, eos_id, rng)
      out[f"{name}_score"] += list(scores)
      out[f"{name}_length"] += list(lengths)
      if name == "policy":
        log_ratio = scoring.policy_outputs(*policy, batch)[0] - scoring.policy_outputs(*baseline, batch)[0]
        out["kl"] += list(np.asarray(jnp.sum(log_ratio * batch["loss_weights"], axis=1)))
  p, b = np.asarray(out["policy_score"]), np.asarray(out["baseline_score"])
  result = {k: float(np.mean(v)) for k, v in out.items()}
  result["win_rate"] = float(np.mean((p > b) + 0.5 * (p == b)))
  result["prompts"] = len(p)
  return result
