"""Training and evaluation batches from the text sources (Grain).

Training pipeline, all of it a function of (data, tokenizer, config.seed):
  training text of every document -> chunks of ~`data.chunk_chars` cut at line boundaries
  -> shuffled (a new order every epoch; repeats forever)      grain.MapDataset
  -> tokenized on the fly, EOS after a document's last chunk  (`data.num_threads` threads, in order)
  -> packed into rows of seq_len + 1 tokens, one segment per chunk (packing.py)
  -> GLOBAL batches of `batch_size` rows, shifted into inputs / targets
  -> this process keeps rows [p * local_rows, (p + 1) * local_rows).

Promises (tested in tests/test_loader.py):
  * Same global batch sequence for any process count: every process builds the global batch
    and keeps its contiguous slice, so concatenating the processes' batches gives the 1-process one.
  * Exact resume: `get_state()` is a small JSON-able dict (also saved by
    grain.checkpoint.CheckpointSave); an iterator restored from it yields exactly the batches the
    uninterrupted one would have. The state is the same on every process and for any process
    count, so a run may resume on a different number of processes from any process's state.
  * Deterministic given `config.seed`, whatever `data.num_threads`; another seed, another order.
  * No attention across documents or chunks (segment ids) and no loss across them or on padding.
  * Evaluation batches: the held-out text packed in order (no shuffle), full global batches padded
    with zero rows, the first `config.eval_batches` of them, identical on every call.

Batch: {"inputs", "targets", "segment_ids", "positions"} int32 and "loss_weights" float32,
each [batch_size // process_count, seq_len].
"""

import functools
import itertools

import grain
import numpy as np

from input_pipeline import packing
from input_pipeline import sources

_DATA_STREAM = 0x64617461  # mixed with config.seed so data order is independent of other seeds


def make_train_iterator(config, tokenizer, process_index, process_count):
  """-> grain.DatasetIterator of this process's training batches (see the module docstring)."""
  local_rows = _validate(config, process_index, process_count)
  train_documents, _, _ = sources.load_splits(config.data)
  chunks = grain.MapDataset.source(document_chunks(train_documents, config.data.chunk_chars))
  if config.data.shuffle:
    chunks = chunks.shuffle(seed=shuffle_seed(config.seed))
  chunks = chunks.repeat(None)  # after shuffle: each epoch gets its own order
  rows = _pack(chunks, tokenizer, config)
  batches = rows.batch(config.batch_size, batch_fn=_batch_fn(config.batch_size))
  return iter(batches.map(row_slice(process_index, local_rows)))


def make_eval_batches(config, tokenizer, process_index, process_count):
  """-> list of at most `config.eval_batches` local batches of held-out text, always the same."""
  local_rows = _validate(config, process_index, process_count)
  _, held_out_documents, _ = sources.load_splits(config.data)
  chunks = grain.MapDataset.source(document_chunks(held_out_documents, config.data.chunk_chars))
  rows = _pack(chunks, tokenizer, config)
  batches = rows.batch(config.batch_size, drop_remainder=False,
                       batch_fn=_batch_fn(config.batch_size))
  take = row_slice(process_index, local_rows)
  return [take(batch) for batch in itertools.islice(batches, config.eval_batches)]


def make_example_iterator(examples, *, seq_len, batch_size, seed, process_index, process_count,
                          shuffle=True, repeat=True):
  """Fine-tuning batches from whole examples [(ids, weights)] (input_pipeline/sft.py): shuffled
  (a new order every epoch, repeating forever), packed without splitting an example, batched and
  sliced per process as the training batches above, with the same promises; loss only where an
  example's weights are 1. repeat=False: one pass (held-out batches), the last batch padded."""
  rows_here = local_rows(batch_size, process_index, process_count)
  arrays = [(np.asarray(ids, np.int32), np.asarray(weights, np.int32)) for ids, weights in examples]
  dataset = grain.MapDataset.source(arrays)
  if shuffle:
    dataset = dataset.shuffle(seed=shuffle_seed(seed))
  if repeat:
    dataset = dataset.repeat(None)
  rows = packing.ExamplePackIterDataset(dataset.to_iter_dataset(), row_len=seq_len + 1)
  batches = rows.batch(batch_size, batch_fn=_batch_fn(batch_size))
  return iter(batches.map(row_slice(process_index, rows_here)))


def document_chunks(documents, chunk_chars):
  """-> [(text, is_last_chunk_of_its_document)] with chunks cut at line boundaries."""
  out = []
  for document in documents:
    pieces = sources.chunk_text(document, chunk_chars)
    out.extend((piece, i == len(pieces) - 1) for i, piece in enumerate(pieces))
  return out


def _pack(chunks, tokenizer, config):
  # Threads only prefetch; grain returns their results in index order, so output is deterministic.
  tokens = chunks.map(functools.partial(_tokenize, tokenizer)).to_iter_dataset(
      grain.ReadOptions(num_threads=config.data.num_threads))
  return packing.PackIterDataset(tokens, row_len=config.seq_len + 1)


def _tokenize(tokenizer, chunk):
  text, is_last = chunk
  ids = tokenizer.encode(text) + ([tokenizer.eos_id] if is_last else [])
  return np.asarray(ids, np.int32)


def _batch_fn(num_rows):
  return functools.partial(packing.rows_to_batch, num_rows=num_rows)


def row_slice(process_index, local_rows):
  return functools.partial(_take_rows, start=process_index * local_rows,
                           stop=(process_index + 1) * local_rows)


def _take_rows(batch, start, stop):
  return {k: v[start:stop] for k, v in batch.items()}


def shuffle_seed(seed):
  # Grain shuffles epoch e with seed + e; hashing keeps seeds s and s + 1 from sharing epochs.
  return int(np.random.SeedSequence([seed, _DATA_STREAM]).generate_state(1)[0])


def local_rows(batch_size, process_index, process_count):
  """-> rows per process, or a clear error."""
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} is outside [0, {process_count}).")
  if batch_size % process_count:
    raise ValueError(f"config.batch_size={batch_size} is not divisible by the process "
                     f"count {process_count}; each process takes an equal slice of the batch.")
  return batch_size // process_count


def _validate(config, process_index, process_count):
  """-> rows per process; a clear error for settings the pipeline cannot honour."""
  rows_here = local_rows(config.batch_size, process_index, process_count)
  if config.seq_len < 1:
    raise ValueError(f"config.seq_len={config.seq_len}; expected a positive number of tokens.")
  if not 0 <= config.data.eval_fraction < 1:
    raise ValueError(f"config.data.eval_fraction={config.data.eval_fraction}; expected 0 <= x < 1.")
  if config.data.chunk_chars < 1:
    raise ValueError(f"config.data.chunk_chars={config.data.chunk_chars}; expected >= 1.")
  if config.seed < 0:
    raise ValueError(f"config.seed={config.seed}; expected a non-negative integer.")
  return rows_here
