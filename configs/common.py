"""Helpers the config files share: `:arg` parsing, the `runlocal` shrink, fine-tuning args.

The fields themselves and their defaults live in training/config.py (`base_config`) and
models/config.py (`model_config`).
"""

import ml_collections


def parse_arg(arg, **defaults):
  """'7b' or 'variant=7b,runlocal=True' -> ConfigDict of fields; bare words set `variant`."""
  out = ml_collections.ConfigDict(dict(defaults))
  for part in filter(None, (arg or "").split(",")):
    key, sep, value = part.partition("=")
    if not sep:
      key, value = "variant", key
    if key not in out:
      raise ValueError(f"config arg {part!r}: unknown key {key!r}; known: {sorted(out.keys())}")
    kind = type(out[key])
    out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
  return out


def shrink_for_local(c):
  """`runlocal=True`: the same recipe, small enough to finish in seconds on a laptop CPU."""
  c.model.update(vocab_size=512, num_layers=2, embed_dim=64, num_heads=4,
                 num_kv_heads=min(c.model.num_kv_heads, 4), head_dim=16, mlp_dim=128,
                 dtype="float32", remat="none")
  c.update(total_steps=20, batch_size=8, seq_len=64, eval_every=10, checkpoint_every=10, log_every=5,
           eval_batches=2)
  c.optimizer.warmup_steps = 5
  c.data.tokenizer_train_chars = 300_000
  c.sample.max_new_tokens = 16


def apply_finetune_args(c, arg, *, local_batch_size, local_seq_len):
  """The args every fine-tuning config takes: init_from=, reward_model= (where the config has it)
  and runlocal=True (4 steps on 16 examples or pairs, for a smoke run)."""
  if arg.init_from:
    c.init_from = arg.init_from
  if arg.get("reward_model"):
    c.reward_model = arg.reward_model
  if arg.runlocal:
    c.update(total_steps=4, eval_every=2, checkpoint_every=2, log_every=1, batch_size=local_batch_size,
             seq_len=local_seq_len)
    c.finetune.update(limit=16, held_out_limit=4)
    c.ppo.update(eval_prompts=4, max_new_tokens=8)  # judged win rates (dpo, ppo)
    c.optimizer.warmup_steps = 1
    c.sample.max_new_tokens = 8
  return c
