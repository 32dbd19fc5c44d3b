"""Fine-tuning data for `config.objective`, from the files in `config.finetune`:

  lm      (SFT)  instruction / chat rows (input_pipeline/sft.py) -> packed examples, loss on replies
  reward, dpo    preference pairs (input_pipeline/preference.py) -> rows (chosen, rejected,
                 chosen, ...), one example per row (a pair's rows are never packed or split)
  ppo            the prompts of preference pairs or SFT rows -> prompt batches for rollouts

    data = finetune.load(config, tokenizer)        # reads and tokenizes: bad files fail here
    train_iter = finetune.train_iterator(data, config, process_index, process_count)
    eval_batches = finetune.eval_batches(data, config, process_index, process_count)

The held-out split is by a hash of the prompt (pairs) or of the whole example (SFT rows), so it
does not move when files grow or are reordered. Skipped rows are counted by reason in
`data.skipped`. Iterators keep the pretraining loader's promises (exact resume, the same global
batches for any process count).
"""

import collections
import dataclasses
import hashlib
import os

import grain
import numpy as np

from input_pipeline import loader, packing, preference, sft, sources

PAIR_OBJECTIVES = ("reward", "dpo")


@dataclasses.dataclass
class Data:
  train: list  # SFT: [(ids, weights)]; pairs: [((ids, w), (ids, w))]; ppo: [prompt ids]
  held_out: list
  skipped: collections.Counter
  files: list
  held_out_prompts: list  # prompt ids of held-out pairs / prompts: win rates judged by a reward model


def _files(config):
  root = sources.resolve_data_dir(config.data)
  files = []
  for name in config.finetune.train_files:
    path = name if os.path.isabs(name) or root is None else os.path.join(root, name)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"config.finetune.train_files: {name!r} is not a file (data dir {root!r})")
    files.append(path)
  if not files:
    raise ValueError(f"config.objective={config.objective!r} needs config.finetune.train_files")
  return files


def _held_out(key, fraction):
  digest = hashlib.sha256(repr(key).encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def load(config, tokenizer):
  """Reads, tokenizes and splits the fine-tuning files; errors name the file and the problem."""
  ft = config.finetune
  sft.check_template(ft.template, tokenizer)
  files, skipped = _files(config), collections.Counter()
  train, held_out, held_out_prompts = [], [], []
  # A row must fit in seq_len tokens: packed rows hold seq_len + 1, and a pair's reward is read
  # at the input position of its last token.
  max_length = config.seq_len
  for path in files:
    if config.objective in PAIR_OBJECTIVES or (config.objective == "ppo" and ft.pairs_format):
      pairs, bad = preference.read_pairs(path, ft.pairs_format)
      skipped.update(bad)
      for pair in pairs:
        side = held_out if preference.is_held_out(pair, ft.held_out_fraction) else train
        if config.objective == "ppo":
          _add_prompt(side, pair.messages, tokenizer, config, skipped)
          continue
        try:
          side.append(preference.tokenize_pair(pair, tokenizer, ft.template, max_length))
        except sft.BadRow as e:
          skipped[str(e)] += 1
          continue
        if side is held_out:
          held_out_prompts.append(tokenizer.encode(sft.prompt_text(pair.messages, ft.template)))
    else:
      rows, bad = sft.read_rows(path)
      skipped.update(bad)
      for row in rows:
        try:
          example = sft.tokenize(row, tokenizer, ft.template, max_length)
        except sft.BadRow as e:
          skipped[str(e)] += 1
          continue
        side = held_out if _held_out(example[0], ft.held_out_fraction) else train
        if config.objective == "ppo":
          _add_prompt(side, sft.messages_of(row)[0][:-1], tokenizer, config, skipped)
          continue
        side.append(example)
  if ft.limit:
    train = train[:ft.limit]
  if config.objective == "ppo":
    held_out_prompts = held_out
  if ft.held_out_limit:
    held_out, held_out_prompts = held_out[:ft.held_out_limit], held_out_prompts[:ft.held_out_limit]
  if not train:
    raise ValueError(f"config.finetune.train_files {list(ft.train_files)}: no usable training "
                     f"example (skipped: {dict(skipped)})")
  return Data(train=train, held_out=held_out, skipped=skipped, files=files, held_out_prompts=held_out_prompts)


def _add_prompt(side, messages, tokenizer, config, skipped):
  """PPO: the prompt's ids, when a response of ppo.max_new_tokens still fits in seq_len."""
  prompt = tokenizer.encode(sft.prompt_text(messages, config.finetune.template))
  if len(prompt) + config.ppo.max_new_tokens > config.seq_len:
    skipped["prompt longer than seq_len - ppo.max_new_tokens"] += 1
  else:
    side.append(prompt)


def summary(data, config):
  unit = {"lm": "examples", "ppo": "prompts"}.get(config.objective, "pairs")
  text = f"fine-tuning data: {len(data.train)} {unit} for training, {len(data.held_out)} held out"
  return text + (f"; skipped {dict(data.skipped)}" if data.skipped else "")


def _pair_rows(pair, row_len, reference=None):
  """A pair -> its two rows of `row_len` tokens (segment 1 on real tokens, 0 on padding)."""
  rows = []
  for side, (ids, weights) in enumerate(pair):
    row = dict(tokens=np.zeros(row_len, np.int32), segment_ids=np.zeros(row_len, np.int32),
               positions=np.zeros(row_len, np.int32), weights=np.zeros(row_len, np.int32))
    n = len(ids)
    row["tokens"][:n], row["segment_ids"][:n] = ids, 1
    row["positions"][:n], row["weights"][:n] = np.arange(n), weights
    if reference is not None:
      row["ref_logprobs"] = reference[side]
    rows.append(row)
  return rows


def _pairs_to_batch(pairs, num_rows):
  rows = [row for pair in pairs for row in pair]
  batch = packing.rows_to_batch(rows, num_rows)
  # DPO's precomputed reference log-probs per target (zeros when the reference runs on the fly).
  batch["ref_logprobs"] = np.zeros(batch["inputs"].shape, np.float32)
  for i, row in enumerate(rows):
    if "ref_logprobs" in row:
      batch["ref_logprobs"][i] = row["ref_logprobs"]
  return batch


def train_iterator(data, config, process_index, process_count, reference=None):
  """This process's training batches, shuffled with config.seed, repeating forever. reference
  (DPO, precomputed): per-target reference log-probs, one [2, seq_len] array per training pair."""
  if config.objective == "lm":
    return loader.make_example_iterator(
        data.train, seq_len=config.seq_len, batch_size=config.batch_size, seed=config.seed,
        process_index=process_index, process_count=process_count)
  if config.objective == "ppo":
    return _prompt_iterator(data.train, config.ppo.rollout_size, config.seed, process_index, process_count)
  local_rows = loader.local_rows(config.batch_size, process_index, process_count)
  items = [_pair_rows(p, config.seq_len + 1, None if reference is None else reference[i])
           for i, p in enumerate(data.train)]
  dataset = grain.MapDataset.source(items).shuffle(seed=loader.shuffle_seed(config.seed)).repeat(None)
  batches = dataset.batch(config.batch_size // 2, batch_fn=lambda ps: _pairs_to_batch(ps, config.batch_size))
  return iter(batches.map(loader.row_slice(process_index, local_rows)))


def pair_batches(pairs, config, process_index=0, process_count=1):
  """Pairs in order -> local batches (the last padded with empty pairs, which losses ignore)."""
  local_rows = loader.local_rows(config.batch_size, process_index, process_count)
  take = loader.row_slice(process_index, local_rows)
  per_batch = config.batch_size // 2
  return [take(_pairs_to_batch([_pair_rows(p, config.seq_len + 1) for p in pairs[i:i + per_batch]], config.batch_size))
          for i in range(0, len(pairs), per_batch)]


def eval_batches(data, config, process_index, process_count):
  """Held-out batches, the same every call: SFT examples packed in order; pairs in order."""
  if not data.held_out or config.objective == "ppo":
    return []
  if config.objective == "lm":
    iterator = loader.make_example_iterator(
        data.held_out, seq_len=config.seq_len, batch_size=config.batch_size, seed=config.seed,
        process_index=process_index, process_count=process_count, shuffle=False, repeat=False)
    return list(iterator)[:config.eval_batches or None]
  return pair_batches(data.held_out, config, process_index, process_count)[:config.eval_batches or None]


def _prompt_iterator(prompts, rollout_size, seed, process_index, process_count):
  """Batches of `rollout_size` prompts (lists of ids), shuffled, repeating; this process's slice."""
  local = loader.local_rows(rollout_size, process_index, process_count)
  dataset = grain.MapDataset.source([np.asarray(p, np.int32) for p in prompts])
  dataset = dataset.shuffle(seed=loader.shuffle_seed(seed)).repeat(None)
  batches = dataset.batch(rollout_size, batch_fn=list)
  return iter(batches.map(lambda b: b[process_index * local:(process_index + 1) * local]))
