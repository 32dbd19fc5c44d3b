"""Test setup: 8 forced CPU devices and the repo on sys.path; a tiny corpus, config, tokenizer."""

import os
import sys

# Before jax is imported anywhere: 8 CPU devices, so sharding tests can build real meshes.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root

import numpy as np
import pytest

from training import config as config_lib

_WORDS = ("the", "king", "queen", "sword", "night", "fair", "ever", "crown", "naïve", "café",
          "Straße", "ship", "sea", "whale", "小さな", "light", "love", "war", "peace", "  gap")


def _write_corpus(directory):
  """Five documents; every line is unique ("doc D line I: ..."), so leaks are detectable."""
  rng = np.random.default_rng(0)
  for d in range(5):
    lines = [f"doc {d} line {i}: " + " ".join(rng.choice(_WORDS, size=rng.integers(3, 12)))
             for i in range(60 + 10 * d)]
    (directory / f"doc{d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
  return directory


def _tiny_config(corpus_dir):
  c = config_lib.base_config()
  c.data.data_dir = str(corpus_dir)
  c.data.path = ("*.txt",)
  c.data.chunk_chars = 300  # ~7 lines: several rows per chunk at seq_len 32
  c.data.num_threads = 0
  c.seq_len = 32
  c.batch_size = 4
  c.eval_batches = 3
  c.model.vocab_size = 400
  return c


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
  return _write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def tiny_config(corpus_dir):
  """base_config() shrunk to the tiny corpus: seq_len 32, batch 4, vocab 400."""
  return _tiny_config(corpus_dir)


@pytest.fixture(scope="session")
def tiny_tokenizer(corpus_dir, tmp_path_factory):
  from input_pipeline import tokenizer as tokenizer_lib
  c = _tiny_config(corpus_dir)
  return tokenizer_lib.get_tokenizer(c.data, vocab_size=c.model.vocab_size,
                                     workdir=str(tmp_path_factory.mktemp("workdir")))
