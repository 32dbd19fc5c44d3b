"""PPO's data: rollouts of the current policy, scored and turned into training minibatches.

Each rollout (InstructGPT / TRL semantics):
  1. `ppo.rollout_size` prompts are sampled from (temperature, top-k, top-p) by the policy with
     models/engine.Engine (the one decoding loop), up to `ppo.max_new_tokens`; a response ends at EOS.
  2. One forward pass each: the policy's log-probs and values (its scalar head), the frozen
     reference's log-probs, the reward model's score at the response's last token.
  3. Per-token rewards: -kl_coef * (log pi - log ref), plus the score on the last token;
     GAE(gamma, lambda) advantages against the values (whitened) and returns.
  4. `ppo.epochs` passes over the rollout, each in a new order, in minibatches of
     `config.batch_size` rows: each is one train step with ppo.loss.
The iterator stands in for the data loader in train.py, so PPO runs the same loop, checkpoints
and resume as every other stage. Its state (prompt position, rollouts done, KL coefficient) is
saved at rollout boundaries only (config_check makes checkpoint_every a multiple of the steps per
rollout), since a half-used rollout cannot be regenerated after a restart.
"""

import contextlib
import json

import jax
import jax.numpy as jnp
import numpy as np

from input_pipeline import packing
from models import engine as engine_lib, partitioning
from training.objectives import formulas, scoring


class _IdText:
  """A tokenizer whose text is the token ids themselves, one character each (chr(id)), so the
  engine decodes token ids: encode(decode(ids)) == ids exactly."""

  def __init__(self, eos_id):
    self.eos_id = eos_id

  @staticmethod
  def encode(text):
    return [ord(c) for c in text]

  @staticmethod
  def decode(ids):
    return "".join(map(chr, ids))


_ENGINES = {}  # (graphdef id, rows, max length, eos) -> (graphdef, Engine): compiled once per run


def sample(graphdef, params, prompts, rng, *, max_new_tokens, temperature, top_k, top_p, eos_id):
  """prompts: lists of token ids -> response ids [B, N] and a mask [B, N] of the tokens up to and
  including the first EOS, N = max_new_tokens. Row i draws from engine.episode_keys(rng)[i]."""
  max_length = engine_lib.bucket(max(map(len, prompts)) + max_new_tokens + 2, (256,))  # never full
  key = (id(graphdef), len(prompts), max_length, int(eos_id))
  if key not in _ENGINES:  # the graphdef is kept alive with its engine, so its id is not reused
    _ENGINES[key] = (graphdef, engine_lib.Engine(graphdef, params, _IdText(int(eos_id)),
                                                 batch_size=len(prompts), max_length=max_length))
  engine = _ENGINES[key][1]
  engine.params = params
  episodes = [engine_lib.OneTurn(engine_lib.Turn(_IdText.decode(p), (), max_new_tokens)) for p in prompts]
  row = {id(e): i for i, e in enumerate(episodes)}
  responses = np.zeros((len(prompts), max_new_tokens), np.int32)
  lengths = np.zeros(len(prompts), np.int32)
  for episode, token in engine.tokens("", episodes, temperature=temperature, top_k=top_k, top_p=top_p,
                                      seed=rng):
    i = row[id(episode)]
    responses[i, lengths[i]] = token
    lengths[i] += 1
  return responses, (np.arange(max_new_tokens)[None] < lengths[:, None]).astype(np.int32)


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


def generate_and_score(policy, reward, prompts, cfg, seq_len, eos_id, rng):
  """policy/reward: (graphdef, params). -> (model batch of prompt + response, reward scores [B],
  response lengths [B])."""
  responses, masks = sample(policy[0], policy[1], prompts, rng, max_new_tokens=cfg.max_new_tokens,
                            temperature=float(cfg.temperature), top_k=int(cfg.top_k),
                            top_p=float(cfg.top_p), eos_id=int(eos_id))
  batch = sequence_rows(prompts, responses, masks, seq_len)
  return batch, np.asarray(scoring.reward_scores(*reward, batch)), masks.sum(axis=1)


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
      batch, scores, lengths = generate_and_score(policy, self.reward, prompts, self.cfg, self.seq_len,
                                                  self.eos_id, rng)
      logprobs, values = (np.asarray(x) for x in scoring.policy_outputs(*policy, batch))
      ref_logprobs, _ = scoring.policy_outputs(*self.reference, batch)
    mask = batch["loss_weights"]
    rewards, kl = formulas.kl_penalised_rewards(jnp.asarray(scores), jnp.asarray(logprobs),
                                                  ref_logprobs, jnp.asarray(mask), self.kl_coef)
    advantages, returns = formulas.gae(rewards, jnp.asarray(values), jnp.asarray(mask),
                                         self.cfg.gamma, self.cfg.lam)
    if self.cfg.whiten_advantages:
      advantages = formulas.whiten(advantages, jnp.asarray(mask))
    batch.update(old_logprobs=logprobs, old_values=values, advantages=np.asarray(advantages),
                 returns=np.asarray(returns))
    kl_per_sequence = np.asarray(kl).sum(axis=1)
    self.stats = dict(reward=float(scores.mean()), kl=float(kl_per_sequence.mean()),
                      response_length=float(lengths.mean()), kl_coef=self.kl_coef,
                      ended_with_eos=float(np.mean([self.eos_id in r for r in batch["targets"] * mask])))
    if self.cfg.adaptive_kl:
      self.kl_coef = formulas.adaptive_kl_coef(self.kl_coef, self.stats["kl"], self.cfg.target_kl,
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
