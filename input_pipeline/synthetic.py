"""Synthetic packed batches for benchmarks and tests: no tokenizer, no files.

Zipf-distributed tokens (learnable within a few steps), two documents per row so segment
masking is exercised. Same fields as loader batches.
"""

import numpy as np


def batches(batch_size, seq_len, vocab_size, steps, seed=0):
  rng = np.random.default_rng(seed)
  b, t = batch_size, seq_len
  for _ in range(steps):
    tokens = np.minimum(rng.zipf(1.3, size=(b, t + 1)), vocab_size - 1).astype(np.int32)
    cut = rng.integers(min(4, t - 1), max(t - 4, min(4, t - 1) + 1), size=b)
    seg = np.where(np.arange(t)[None] < cut[:, None], 1, 2).astype(np.int32)
    pos = np.where(seg == 1, np.arange(t)[None], np.arange(t)[None] - cut[:, None]).astype(np.int32)
    weights = np.ones((b, t), np.float32)
    weights[np.arange(b), cut - 1] = 0.0  # the last token of doc 1 does not predict doc 2
    yield dict(inputs=tokens[:, :-1], targets=tokens[:, 1:], segment_ids=seg, positions=pos, loss_weights=weights)
