"""PPO's data: rollouts of the current policy, scored and turned into training minibatches.

Each rollout (InstructGPT / TRL semantics):
  1. `ppo.rollout_size` prompts are sampled from (temperature, top-k, top-p) by the policy with a
     KV cache, all tokens in one jitted loop, up to `ppo.max_new_tokens`; a response ends at EOS.
  2. One forward pass each: the policy's log-probs and values (its scalar head), the frozen
     reference's log-probs, the reward model's score at the response's last token.
  3. Per-token rewards: -kl_coef * (log pi - log ref), plus the score on the last token;
     GAE(gamma, lambda) advantages against the values (whitened) and returns.
  4. `ppo.epochs` passes over the rollout, each in a new order, in minibatches of
     `config.batch_size` rows: each is one train step with steps.ppo_loss.
Sampling here is one compiled loop over all steps (models/decode.Sampler steps on the host, for
stop strings and streaming, which rollouts do not need); both share decode.sample_logits.
The iterator stands in for the data loader in train.py, so PPO runs the same loop, checkpoints
and resume as every other stage. Its state (prompt position, rollouts done, KL coefficient) is
saved at rollout boundaries only (config_check makes checkpoint_every a multiple of the steps per
rollout), since a half-used rollout cannot be regenerated after a restart.
"""

import contextlib
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from input_pipeline import packing
from models import partitioning
from models.decode import sample_logits
from models.transformer import init_cache
from training import objectives, steps


def check_same_tokenizer(policy_tokenizer, reward_tokenizer, where):
  """The reward model must read the policy's token ids as the same text."""
  probe = "Hello, world! <|im_end|> 123 naïve"
  if (policy_tokenizer.vocab_size != reward_tokenizer.vocab_size or
      policy_tokenizer.eos_id != reward_tokenizer.eos_id or
      policy_tokenizer.encode(probe) != reward_tokenizer.encode(probe)):
    raise ValueError(
        f"{where}: the reward model's tokenizer (vocab {reward_tokenizer.vocab_size}, eos "
        f"{reward_tokenizer.eos_id}) does not match the policy's (vocab {policy_tokenizer.vocab_size}, "
        f"eos {policy_tokenizer.eos_id}): its scores would be of different text. Train the reward "
        "model from the policy's base model.")


_JITTED = {}


def _jitted(fn, graphdef, **static):
  """jax.jit of fn(graphdef, ..., **static) with the graphdef closed over (it holds the model's
  ConfigDict, which is not hashable, so it cannot be a static argument); one per graphdef."""
  key = (fn.__name__, id(graphdef), tuple(sorted(static.items())))
  if key not in _JITTED:
    _JITTED[key] = (graphdef, jax.jit(functools.partial(fn, graphdef, **static)))  # keeps graphdef alive
  return _JITTED[key][1]


def sample(graphdef, params, prompts, segments, rng, **settings):
  """prompts, segments: [B, P] int32, left-padded (segment 0 on padding) -> response ids [B, N]
  and a mask [B, N] of the tokens up to and including the first EOS. settings: max_new_tokens,
  temperature, top_k, top_p, eos_id."""
  return _jitted(_sample, graphdef, **settings)(params, prompts, segments, rng)


def _sample(graphdef, params, prompts, segments, rng, *, max_new_tokens, temperature, top_k, top_p, eos_id):
  model = nnx.merge(graphdef, params)
  positions = jnp.maximum(jnp.cumsum(segments, axis=1) - 1, 0)
  batch, prompt_len = prompts.shape
  cache = init_cache(model.cfg, batch, prompt_len + max_new_tokens)
  logits, cache = model(prompts, positions, segments, cache, 0)
  next_position = positions[:, -1] + 1

  def body(i, carry):
    logits, cache, out, done, rng = carry
    rng, step_rng = jax.random.split(rng)
    token = sample_logits(logits, step_rng, temperature, top_k, top_p)
    out = out.at[:, i].set(jnp.where(done, 0, token))
    new_logits, cache = model(token[:, None], (next_position + i)[:, None], jnp.ones_like(token)[:, None],
                              cache, prompt_len + i)
    return new_logits[:, -1], cache, out, done | (token == eos_id), rng

  out = jnp.zeros((batch, max_new_tokens), jnp.int32)
  done = jnp.zeros((batch,), bool)
  _, _, out, _, _ = jax.lax.fori_loop(0, max_new_tokens, body, (logits[:, -1], cache, out, done, rng))
  after_eos = jnp.cumsum(jnp.cumsum((out == eos_id).astype(jnp.int32), axis=1), axis=1) > 1
  return out, (~after_eos).astype(jnp.int32)


def left_pad(prompts, multiple=32):
  """[ids] -> (tokens, segments) [B, P] int32, each prompt right-aligned, segment 0 on padding;
  P rounded up to `multiple` so rollouts reuse a few compiled shapes."""
  width = -(-max(len(p) for p in prompts) // multiple) * multiple
  tokens, segments = np.zeros((len(prompts), width), np.int32), np.zeros((len(prompts), width), np.int32)
  for i, p in enumerate(prompts):
    tokens[i, width - len(p):], segments[i, width - len(p):] = p, 1
  return tokens, segments


def sequence_rows(prompts, responses, masks, seq_len):
  """Prompt + response per row, left-aligned in seq_len + 1 tokens -> a model batch whose
  loss_weights mark the response tokens."""
  rows = []
  for prompt, response, mask in zip(prompts, responses, masks):
    ids = list(prompt) + list(response[:int(mask.sum())])
    n = len(ids)
    row = dict(tokens=np.zeros(seq_len + 1, np.int32), segment_ids=np.zeros(seq_len + 1, np.int32),
               positions=np.zeros(seq_len + 1, np.int32), weights=np.zeros(seq_len + 1, np.int32))
    row["tokens"][:n], row["segment_ids"][:n], row["positions"][:n] = ids, 1, np.arange(n)
    row["weights"][len(prompt):n] = 1
    rows.append(row)
  return packing.rows_to_batch(rows, len(rows))


def policy_outputs(graphdef, params, batch):
  """Per-target log-probs [B, T] and values [B, T] (zeros without a scalar head)."""
  return _jitted(_policy_outputs, graphdef)(params, batch)


def _policy_outputs(graphdef, params, batch):
  model = nnx.merge(graphdef, params)
  features, _ = model.features(batch["inputs"], batch["positions"], batch["segment_ids"])
  logprobs = objectives.token_logprobs(model.logits(features), batch["targets"])
  values = model.scores(features) if model.cfg.score_head else jnp.zeros_like(logprobs)
  return logprobs, values


def reward_scores(graphdef, params, batch):
  """The reward model's score at each row's last trained token [B]."""
  return _jitted(steps.reply_scores, graphdef)(params, batch)


def generate_and_score(policy, reward, prompts, cfg, seq_len, eos_id, rng):
  """policy/reward: (graphdef, params). -> (model batch of prompt + response, reward scores [B],
  response lengths [B])."""
  tokens, segments = left_pad(prompts)
  responses, masks = sample(policy[0], policy[1], tokens, segments, rng,
                            max_new_tokens=cfg.max_new_tokens, temperature=float(cfg.temperature),
                            top_k=int(cfg.top_k), top_p=float(cfg.top_p), eos_id=int(eos_id))
  responses, masks = np.asarray(responses), np.asarray(masks)
  batch = sequence_rows(prompts, responses, masks, seq_len)
  return batch, np.asarray(reward_scores(*reward, batch)), masks.sum(axis=1)


class RolloutIterator:
  """next() -> the next PPO minibatch (numpy, this process's rows); see the module docstring.
  Call `set_policy(full_params)` before each next() so a new rollout samples the current policy."""

  def __init__(self, prompt_iterator, config, policy_graphdef, reference, reward, eos_id, mesh=None):
    self.prompts, self.cfg, self.seq_len = prompt_iterator, config.ppo, config.seq_len
    self.batch_size, self.seed = config.batch_size, config.seed
    self.policy_graphdef, self.reference, self.reward, self.eos_id = policy_graphdef, reference, reward, eos_id
    self.rules, self.mesh = tuple(config.logical_axis_rules), mesh
    self.kl_coef, self.rollouts_done = float(self.cfg.kl_coef), 0
    self.policy_params, self._queue, self.stats = None, [], {}

  def set_policy(self, full_params):
    self.policy_params = full_params

  def __iter__(self):
    return self

  def __next__(self):
    if not self._queue:
      self._rollout()
    return self._queue.pop(0)

  def _rollout(self):
    if self.policy_params is None:
      raise RuntimeError("RolloutIterator: set_policy() before next()")
    prompts = next(self.prompts)
    rng = jax.random.fold_in(jax.random.key(self.seed), self.rollouts_done)
    policy = (self.policy_graphdef, self.policy_params)
    with partitioning.activation_sharding(self.mesh, self.rules) if self.mesh else contextlib.nullcontext():
      batch, scores, lengths = generate_and_score(policy, self.reward, prompts, self.cfg, self.seq_len, self.eos_id, rng)
      logprobs, values = (np.asarray(x) for x in policy_outputs(*policy, batch))
      ref_logprobs, _ = policy_outputs(*self.reference, batch)
    mask = batch["loss_weights"]
    rewards, kl = objectives.kl_penalised_rewards(jnp.asarray(scores), jnp.asarray(logprobs),
                                                  ref_logprobs, jnp.asarray(mask), self.kl_coef)
    advantages, returns = objectives.gae(rewards, jnp.asarray(values), jnp.asarray(mask),
                                         self.cfg.gamma, self.cfg.lam)
    if self.cfg.whiten_advantages:
      advantages = objectives.whiten(advantages, jnp.asarray(mask))
    batch.update(old_logprobs=logprobs, old_values=values, advantages=np.asarray(advantages),
                 returns=np.asarray(returns))
    kl_per_sequence = np.asarray(kl).sum(axis=1)
    self.stats = dict(reward=float(scores.mean()), kl=float(kl_per_sequence.mean()),
                      response_length=float(lengths.mean()), kl_coef=self.kl_coef,
                      ended_with_eos=float(np.mean([self.eos_id in r for r in batch["targets"] * mask])))
    if self.cfg.adaptive_kl:
      self.kl_coef = objectives.adaptive_kl_coef(self.kl_coef, self.stats["kl"], self.cfg.target_kl,
                                                 self.cfg.kl_horizon, len(prompts))
    order_rng = np.random.default_rng([self.seed, self.rollouts_done])
    for _ in range(self.cfg.epochs):
      order = order_rng.permutation(len(prompts))
      for start in range(0, len(prompts), self.batch_size):
        rows = order[start:start + self.batch_size]
        self._queue.append({k: v[rows] for k, v in batch.items()})
    self.rollouts_done += 1

  # grain.checkpoint saves and restores any iterator with these (bytes) and start_prefetch.
  def get_state(self):
    if self._queue:
      raise RuntimeError("PPO state saved in the middle of a rollout; checkpoint_every must be a "
                         "multiple of the steps per rollout")
    return json.dumps(dict(prompts=self.prompts.get_state(), rollouts_done=self.rollouts_done,
                           kl_coef=self.kl_coef)).encode()

  def set_state(self, state):
    state = json.loads(state)
    self.prompts.set_state(state["prompts"])
    self.rollouts_done, self.kl_coef, self._queue = state["rollouts_done"], state["kl_coef"], []

  def start_prefetch(self):
    pass


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
      batch, scores, lengths = generate_and_score(model, reward, chunk, cfg, seq_len, eos_id, rng)
      out[f"{name}_score"] += list(scores)
      out[f"{name}_length"] += list(lengths)
      if name == "policy":
        log_ratio = policy_outputs(*policy, batch)[0] - policy_outputs(*baseline, batch)[0]
        out["kl"] += list(np.asarray(jnp.sum(log_ratio * batch["loss_weights"], axis=1)))
  p, b = np.asarray(out["policy_score"]), np.asarray(out["baseline_score"])
  result = {k: float(np.mean(v)) for k, v in out.items()}
  result["win_rate"] = float(np.mean((p > b) + 0.5 * (p == b)))
  result["prompts"] = len(p)
  return result
