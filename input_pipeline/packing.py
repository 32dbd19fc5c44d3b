"""Packing token chunks into fixed-length rows, and rows into model batches.

A row is `row_len` = seq_len + 1 consecutive tokens of the chunk stream. Each chunk (or the part
of it that falls in a row) is its own segment: ids 1, 2, ... within the row, positions restart at
0, and attention must never cross segments. A chunk that does not fit continues as a new segment
at the start of the next row, so training rows have no padding; only the last row of a finite
stream (evaluation) is padded with token 0 / segment 0.

The iterator state is (parent state before the current chunk, tokens of it already emitted), so
restoring re-reads one chunk and continues mid-chunk exactly.
"""

import grain
import numpy as np


class PackIterDataset(grain.IterDataset):
  """1-D int32 token arrays -> rows {"tokens", "segment_ids", "positions"}, each [row_len] int32."""

  def __init__(self, parent, row_len):
    super().__init__(parent)
    self._row_len = row_len

  def __iter__(self):
    return _PackIterator(self._parent.__iter__(), self._row_len)


class _PackIterator(grain.DatasetIterator):

  def __init__(self, parent, row_len):
    super().__init__(parent)
    self._row_len = row_len
    self._chunk = None  # tokens of the current chunk
    self._chunk_state = None  # parent state from which next(parent) yields the current chunk
    self._offset = 0  # tokens of the current chunk already emitted

  def __next__(self):
    tokens = np.zeros(self._row_len, np.int32)
    segment_ids = np.zeros(self._row_len, np.int32)
    positions = np.zeros(self._row_len, np.int32)
    filled, segment = 0, 0
    while filled < self._row_len:
      if self._chunk is None or self._offset == len(self._chunk):
        self._chunk_state = self._parent.get_state()
        try:
          self._chunk, self._offset = next(self._parent), 0
        except StopIteration:
          self._chunk = None
          break
        continue  # an empty chunk is skipped without using a segment id
      n = min(self._row_len - filled, len(self._chunk) - self._offset)
      segment += 1
      tokens[filled:filled + n] = self._chunk[self._offset:self._offset + n]
      segment_ids[filled:filled + n] = segment
      positions[filled:filled + n] = np.arange(n)
      filled += n
      self._offset += n
    if filled == 0:
      raise StopIteration
    return {"tokens": tokens, "segment_ids": segment_ids, "positions": positions}

  def get_state(self):
    if self._chunk is None or self._offset == len(self._chunk):
      return {"parent": self._parent.get_state(), "offset": 0}
    return {"parent": self._chunk_state, "offset": self._offset}

  def set_state(self, state):
    self._parent.set_state(state["parent"])
    self._chunk, self._chunk_state, self._offset = None, state["parent"], 0
    if state["offset"]:
      self._chunk, self._offset = next(self._parent), state["offset"]


class ExamplePackIterDataset(grain.IterDataset):
  """Whole examples (ids, weights) -> rows {"tokens", "segment_ids", "positions", "weights"}, each
  [row_len] int32, for fine-tuning: examples go into the current row while they fit, each its own
  segment, and are never split (a prompt in one row and its answer in the next would train the
  answer without its question); the rest of the row is padding. The state is the parent's state
  before the example that did not fit, so restoring re-reads it."""

  def __init__(self, parent, row_len):
    super().__init__(parent)
    self._row_len = row_len

  def __iter__(self):
    return _ExamplePackIterator(self._parent.__iter__(), self._row_len)


class _ExamplePackIterator(grain.DatasetIterator):

  def __init__(self, parent, row_len):
    super().__init__(parent)
    self._row_len = row_len
    self._held = None  # an example read but not yet placed (it did not fit the last row)
    self._held_state = None  # parent state from which next(parent) yields it

  def __next__(self):
    row = {k: np.zeros(self._row_len, np.int32) for k in ("tokens", "segment_ids", "positions", "weights")}
    filled, segment = 0, 0
    while True:
      if self._held is None:
        state = self._parent.get_state()
        try:
          self._held = next(self._parent)
        except StopIteration:
          break
        self._held_state = state
      ids, weights = self._held
      n = len(ids)
      if n > self._row_len:
        raise ValueError(f"an example of {n} tokens cannot fit a row of {self._row_len}")
      if filled + n > self._row_len:
        break
      segment += 1
      row["tokens"][filled:filled + n] = ids
      row["weights"][filled:filled + n] = weights
      row["segment_ids"][filled:filled + n] = segment
      row["positions"][filled:filled + n] = np.arange(n)
      filled += n
      self._held = None
    if filled == 0:
      raise StopIteration
    return row

  def get_state(self):
    return {"parent": self._parent.get_state() if self._held is None else self._held_state}

  def set_state(self, state):
    self._parent.set_state(state["parent"])
    self._held, self._held_state = None, None


def rows_to_batch(rows, num_rows):
  """Rows (at most `num_rows`) -> model batch; missing rows are padding.

  Returns {"inputs", "targets", "segment_ids", "positions"} int32 and "loss_weights" float32,
  each [num_rows, row_len - 1]. A target counts (weight 1) only when it is the next token of the
  same segment: never across a segment boundary, never on padding; rows with "weights" (fine-tuning
  examples) count only targets whose weight is 1 (the response, not the prompt).
  """
  row_len = len(rows[0]["tokens"])
  full = {k: np.zeros((num_rows, row_len), np.int32)
          for k in ("tokens", "segment_ids", "positions", "weights") if k in rows[0]}
  for i, row in enumerate(rows):
    for k, array in full.items():
      array[i] = row[k]
  tokens, segment_ids = full["tokens"], full["segment_ids"]
  same_segment = (segment_ids[:, :-1] == segment_ids[:, 1:]) & (segment_ids[:, :-1] > 0)
  if "weights" in full:
    same_segment &= full["weights"][:, 1:] > 0
  return {
      "inputs": np.ascontiguousarray(tokens[:, :-1]),
      "targets": np.ascontiguousarray(tokens[:, 1:]),
      "segment_ids": np.ascontiguousarray(segment_ids[:, :-1]),
      "positions": np.ascontiguousarray(full["positions"][:, :-1]),
      "loss_weights": same_segment.astype(np.float32),
  }
