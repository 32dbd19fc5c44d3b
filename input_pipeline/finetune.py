"""Fine-tuning data from the files in `config.finetune`, in the three shapes the objectives train on:

  examples  instruction / chat rows (input_pipeline/sft.py) -> packed examples, loss on replies
  pairs     preference pairs (input_pipeline/preference.py) -> rows (chosen, rejected, chosen, ...),
            one example per row (a pair's rows are never packed or split)
  prompts   the prompts of preference pairs or of SFT rows -> prompt batches (for rollouts)

    data = finetune.load_pairs(config, tokenizer)        # reads and tokenizes: bad files fail here
    train_iter = finetune.pair_iterator(data.train, config, process_index, process_count)
    eval_batches = finetune.pair_batches(data.held_out, config, process_index, process_count)

Each objective (training/objectives/) picks its shape. The held-out split is by a hash of the
prompt (pairs) or of the whole example (SFT rows; sft.is_held_out), so it does not move when files
grow or are reordered. Skipped rows are counted by reason in `data.skipped`. Iterators keep the
pretraining loader's promises (exact resume, the same global batches for any process count).
"""

import collections
import dataclasses
import os

import grain
import numpy as np

from input_pipeline import loader, packing, preference, sft, sources


@dataclasses.dataclass
class Data:
  train: list  # examples: [(ids, weights)]; pairs: [((ids, w), (ids, w))]; prompts: [prompt ids]
  held_out: list
  skipped: collections.Counter
  files: list
  held_out_prompts: list  # prompt ids of held-out pairs / prompts: win rates judged by a reward model
  unit: str  # what one item is, for the summary: examples, pairs or prompts

  def summary(self):
    text = f"fine-tuning data: {len(self.train)} {self.unit} for training, {len(self.held_out)} held out"
    return text + (f"; skipped {dict(self.skipped)}" if self.skipped else "")


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


def _finish(config, files, train, held_out, skipped, held_out_prompts, unit):
  ft = config.finetune
  if ft.limit:
    train = train[:ft.limit]
  if ft.held_out_limit:
    held_out, held_out_prompts = held_out[:ft.held_out_limit], held_out_prompts[:ft.held_out_limit]
  if not train:
    raise ValueError(f"config.finetune.train_files {list(ft.train_files)}: no usable training "
                     f"example (skipped: {dict(skipped)})")
  return Data(train=train, held_out=held_out, skipped=skipped, files=files,
              held_out_prompts=held_out_prompts, unit=unit)


def _sft_rows(config, tokenizer, files, skipped):
  """(example, row) of every usable SFT row in file order; an example must fit in seq_len tokens
  (packed rows hold seq_len + 1)."""
  ft = config.finetune
  for path in files:
    rows, bad = sft.read_rows(path)
    skipped.update(bad)
    for row in rows:
      try:
        yield sft.tokenize(row, tokenizer, ft.template, config.seq_len), row
      except sft.BadRow as e:
        skipped[str(e)] += 1


def _pairs(files, ft, skipped):
  for path in files:
    pairs, bad = preference.read_pairs(path, ft.pairs_format)
    skipped.update(bad)
    yield from pairs


def load_examples(config, tokenizer):
  """SFT: the rows of config.finetune.train_files -> (ids, weights) examples, split by hash."""
  ft = config.finetune
  sft.check_template(ft.template, tokenizer)
  files, skipped, train, held_out = _files(config), collections.Counter(), [], []
  for example, _ in _sft_rows(config, tokenizer, files, skipped):
    (held_out if sft.is_held_out(repr(example[0]), ft.held_out_fraction) else train).append(example)
  return _finish(config, files, train, held_out, skipped, [], "examples")


def load_pairs(config, tokenizer):
  """Preference pairs -> tokenized (chosen, rejected) examples split by the prompt's hash; a
  pair's reward is read at the input position of its last token, so each fits in seq_len."""
  ft = config.finetune
  sft.check_template(ft.template, tokenizer)
  files, skipped, train, held_out, held_out_prompts = _files(config), collections.Counter(), [], [], []
  for pair in _pairs(files, ft, skipped):
    side = held_out if preference.is_held_out(pair, ft.held_out_fraction) else train
    try:
      side.append(preference.tokenize_pair(pair, tokenizer, ft.template, config.seq_len))
    except sft.BadRow as e:
      skipped[str(e)] += 1
      continue
    if side is held_out:
      held_out_prompts.append(tokenizer.encode(sft.prompt_text(pair.messages, ft.template)))
  return _finish(config, files, train, held_out, skipped, held_out_prompts, "pairs")


def load_prompts(config, tokenizer, max_new_tokens, length_field="max_new_tokens"):
  """The prompts of preference pairs (finetune.pairs_format set) or of SFT rows (their last
  assistant turn removed), kept when a response of max_new_tokens (the config's `length_field`)
  still fits in seq_len."""
  ft = config.finetune
  sft.check_template(ft.template, tokenizer)
  files, skipped, train, held_out = _files(config), collections.Counter(), [], []

  def add(side, messages):
    prompt = tokenizer.encode(sft.prompt_text(messages, ft.template))
    if len(prompt) + max_new_tokens > config.seq_len:
      skipped[f"prompt longer than seq_len - {length_field}"] += 1
    else:
      side.append(prompt)

  if ft.pairs_format:
    for pair in _pairs(files, ft, skipped):
      add(held_out if preference.is_held_out(pair, ft.held_out_fraction) else train, pair.messages)
  else:
    for example, row in _sft_rows(config, tokenizer, files, skipped):
      add(held_out if sft.is_held_out(repr(example[0]), ft.held_out_fraction) else train,
          sft.messages_of(row)[0][:-1])
  return _finish(config, files, train, held_out, skipped, held_out, "prompts")


def example_iterator(examples, config, process_index, process_count):
  """This process's training batches of packed examples, shuffled with config.seed, forever."""
  return loader.make_example_iterator(
      examples, seq_len=config.seq_len, batch_size=config.batch_size, seed=config.seed,
      process_index=process_index, process_count=process_count)


def example_batches(examples, config, process_index, process_count):
  """Held-out batches of packed examples, in order, the same every call."""
  if not examples:
    return []
  iterator = loader.make_example_iterator(
      examples, seq_len=config.seq_len, batch_size=config.batch_size, seed=config.seed,
      process_index=process_index, process_count=process_count, shuffle=False, repeat=False)
  return list(iterator)[:config.eval_batches or None]


def _pair_rows(pair, row_len, extra=None):
  """A pair -> its two rows of `row_len` tokens (segment 1 on real tokens, 0 on padding).
  extra: {field: [2, row_len] array} per-token values carried into the batch (one row each)."""
  rows = []
  for side, (ids, weights) in enumerate(pair):
    row = dict(tokens=np.zeros(row_len, np.int32), segment_ids=np.zeros(row_len, np.int32),
               positions=np.zeros(row_len, np.int32), weights=np.zeros(row_len, np.int32))
    n = len(ids)
    row["tokens"][:n], row["segment_ids"][:n] = ids, 1
    row["positions"][:n], row["weights"][:n] = np.arange(n), weights
    row.update({name: values[side] for name, values in (extra or {}).items()})
    rows.append(row)
  return rows


def _pairs_to_batch(pairs, num_rows, extra_fields):
  rows = [row for pair in pairs for row in pair]
  batch = packing.rows_to_batch(rows, num_rows)
  for name in extra_fields:  # per-target values (zeros on the padding rows of a last batch)
    batch[name] = np.zeros(batch["inputs"].shape, np.float32)
    for i, row in enumerate(rows):
      if name in row:
        batch[name][i] = row[name]
  return batch


def pair_iterator(pairs, config, process_index, process_count, extra=None, extra_fields=()):
  """This process's training batches of pairs, shuffled with config.seed, repeating forever.
  extra: {field: one [2, seq_len] array per pair} (e.g. DPO's precomputed reference log-probs);
  extra_fields: the per-token fields every batch carries (zeros where `extra` has none)."""
  local_rows = loader.local_rows(config.batch_size, process_index, process_count)
  items = [_pair_rows(p, config.seq_len + 1, {k: v[i] for k, v in (extra or {}).items()})
           for i, p in enumerate(pairs)]
  dataset = grain.MapDataset.source(items).shuffle(seed=loader.shuffle_seed(config.seed)).repeat(None)
  batches = dataset.batch(config.batch_size // 2,
                          batch_fn=lambda ps: _pairs_to_batch(ps, config.batch_size, extra_fields))
  return iter(batches.map(loader.row_slice(process_index, local_rows)))


def pair_batches(pairs, config, process_index=0, process_count=1, extra_fields=()):
  """Pairs in order -> local batches (the last padded with empty pairs, which losses ignore)."""
  local_rows = loader.local_rows(config.batch_size, process_index, process_count)
  take = loader.row_slice(process_index, local_rows)
  per_batch = config.batch_size // 2
  return [take(_pairs_to_batch([_pair_rows(p, config.seq_len + 1) for p in pairs[i:i + per_batch]],
                               config.batch_size, extra_fields))
          for i in range(0, len(pairs), per_batch)]


def prompt_iterator(prompts, batch_size, seed, process_index, process_count):
  """Batches of `batch_size` prompts (lists of ids), shuffled, repeating; this process's slice."""
  local = loader.local_rows(batch_size, process_index, process_count)
  dataset = grain.MapDataset.source([np.asarray(p, np.int32) for p in prompts])
  dataset = dataset.shuffle(seed=loader.shuffle_seed(seed)).repeat(None)
  batches = dataset.batch(batch_size, batch_fn=list)
  return iter(batches.map(lambda b: b[process_index * local:(process_index + 1) * local]))
