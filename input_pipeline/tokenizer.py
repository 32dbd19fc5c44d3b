"""SentencePiece BPE tokenizer: trained once on the training split, saved in the workdir, reused.

Promises (tested in tests/test_tokenizer.py):
  * Lossless: byte fallback, identity normalisation, no dummy prefix, no whitespace removal, so
    decode(encode(text)) == text for any text without U+2581 ('▁', SentencePiece's space mark).
  * Ids: pad 0 (padding rows use it), bos 1, eos 2, unk 3 for the tokenizers trained here.
  * sum(token_byte_lengths()[encode(text)]) == len(text.encode()) (bits-per-byte).
  * Trained from the training split only (never held-out text), from at most
    `data.tokenizer_train_chars` characters; written atomically to WORKDIR/tokenizer.model and
    loaded, never retrained, when that file exists. Only process 0 trains; the others wait.
"""

import io
import os
import shutil
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np
import sentencepiece as spm

from input_pipeline import files, hf_tokenizer, sources

FILENAME = "tokenizer.model"
_PIECE_CHARS = 4096  # SentencePiece "sentences" for training: line-aligned text pieces this long


class Tokenizer:
  """A SentencePiece model with the ids the loader and the evals need."""

  def __init__(self, path, model_proto=None):
    self.path = path
    if model_proto is None:
      with open(path, "rb") as f:
        model_proto = f.read()
    self.model_proto = model_proto
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    self.vocab_size = self._sp.vocab_size()
    self.bos_id = self._sp.bos_id()
    self.eos_id = self._sp.eos_id()
    self.pad_id = 0  # the loader pads with 0; padded positions always have loss weight 0
    if self.eos_id < 0:
      raise ValueError(f"tokenizer {path} defines no EOS piece; the loader ends documents with it.")

  def encode(self, text):
    return self._sp.encode(text)

  def decode(self, ids):
    return self._sp.decode([int(i) for i in ids])

  def token_byte_lengths(self):
    """[vocab_size] int32: UTF-8 bytes each token decodes to (byte pieces 1, control/unk 0)."""
    sp = self._sp
    lengths = np.zeros(self.vocab_size, np.int32)
    for i in range(self.vocab_size):
      if sp.is_byte(i):
        lengths[i] = 1
      elif not (sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i)):
        lengths[i] = len(sp.id_to_piece(i).replace("\u2581", " ").encode("utf-8"))
    return lengths


def get_tokenizer(data_config, *, vocab_size, workdir):
  """The run's tokenizer: `data.tokenizer` if set, else WORKDIR/tokenizer.model (trained if absent).

  With `data.tokenizer` set, a copy is kept in the workdir so the workdir alone reproduces the run;
  a different model already there is an error (a resumed run must not switch tokenizers).
  """
  path = os.path.join(workdir, FILENAME)
  if jax.process_index() == 0 and not os.path.exists(path):
    if data_config.tokenizer:
      with open(data_config.tokenizer, "rb") as f:
        model_proto = f.read()
    else:
      model_proto = train_tokenizer(data_config, vocab_size)
    files.write_atomically(path, model_proto)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("frugal:tokenizer")
  tokenizer = Tokenizer(path)
  if data_config.tokenizer:
    with open(data_config.tokenizer, "rb") as f:
      if f.read() != tokenizer.model_proto:
        raise ValueError(f"data.tokenizer={data_config.tokenizer!r} differs from {path}, which "
                         f"this workdir was started with; use a fresh workdir or the same "
                         f"tokenizer.")
  if tokenizer.vocab_size > vocab_size:
    raise ValueError(f"tokenizer {data_config.tokenizer or path} has {tokenizer.vocab_size} "
                     f"tokens but config.model.vocab_size is {vocab_size}; raise model.vocab_size "
                     f"to at least {tokenizer.vocab_size} or use another tokenizer.")
  return tokenizer


def train_tokenizer(data_config, vocab_size):
  """-> serialized SentencePiece BPE model fit on (part of) the training split."""
  train_documents, _, _ = sources.load_splits(data_config)
  pieces = [p for d in train_documents for p in sources.chunk_text(d, _PIECE_CHARS)]
  # A fixed order independent of config.seed: runs differing only in seed share a tokenizer.
  order = np.random.default_rng(0).permutation(len(pieces))
  sample, num_chars = [], 0
  for i in order:
    if num_chars >= data_config.tokenizer_train_chars:
      break
    piece = pieces[i][:data_config.tokenizer_train_chars - num_chars]
    sample.extend(piece[j:j + _PIECE_CHARS] for j in range(0, len(piece), _PIECE_CHARS))
    num_chars += len(piece)
  model = io.BytesIO()
  start = time.time()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sample),
      model_writer=model,
      model_type="bpe",
      vocab_size=vocab_size,
      hard_vocab_limit=False,  # a small corpus may support fewer pieces: vocab_size is a maximum
      byte_fallback=True,
      normalization_rule_name="identity",
      add_dummy_prefix=False,
      remove_extra_whitespaces=False,
      allow_whitespace_only_pieces=True,  # runs of spaces (indentation) become single pieces
      split_digits=True,  # as LLaMA: numbers are spelled digit by digit
      max_sentence_length=4 * _PIECE_CHARS,  # bytes; pieces are at most _PIECE_CHARS characters
      pad_id=0, bos_id=1, eos_id=2, unk_id=3,
      num_threads=os.cpu_count() or 1,
      minloglevel=2,
  )
  logging.info("tokenizer: trained BPE vocab %d on %d characters in %.1f s", vocab_size,
               num_chars, time.time() - start)
  return model.getvalue()


def save_to_workdir(tokenizer, workdir):
  """A copy of the run's tokenizer in the workdir, so the workdir alone is a usable model."""
  if isinstance(tokenizer, hf_tokenizer.HFTokenizer):
    tokenizer.save(workdir)
  elif os.path.abspath(tokenizer.path) != os.path.abspath(os.path.join(workdir, "tokenizer.model")):
    shutil.copyfile(tokenizer.path, os.path.join(workdir, "tokenizer.model"))


def load_from_workdir(workdir):
  """The tokenizer a training workdir holds: an imported model's (hf_tokenizer) or SentencePiece's."""
  if os.path.isfile(os.path.join(workdir, hf_tokenizer.SAVED_NAME)):
    return hf_tokenizer.HFTokenizer.load(workdir)
  return Tokenizer(os.path.join(workdir, "tokenizer.model"))
