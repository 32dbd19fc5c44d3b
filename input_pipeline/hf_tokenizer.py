"""Tokenizers of imported models (Hugging Face tokenizer.json, or the vocabulary inside a GGUF),
with the same surface as our SentencePiece `Tokenizer`: encode, decode, vocab_size, bos/eos/pad
ids and token_byte_lengths (for bits-per-byte).

GGUF files with `tokenizer.ggml.model == "gpt2"` (SmolLM2, LLaMA-3, Qwen...) hold a byte-level BPE
vocabulary and merges; we rebuild it with the `tokenizers` library as a ByteLevel BPE with the
GPT-2 split regex, as transformers does when it loads a GGUF. Control tokens (token type 3, e.g.
<|im_start|>) become special tokens, so chat markup in text encodes to single ids.
GGUF files with `tokenizer.ggml.model == "llama"` hold a SentencePiece BPE vocabulary (pieces and
scores); `sentencepiece_bpe` turns that into the equivalent tokenizers BPE (our own exports use
it too: export/tokenizer_json.py).
"""

import json
import os

import numpy as np
import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers

_NORMAL, _CONTROL = 1, 3  # llama.cpp token types (2 unknown, 5 unused, 6 byte)
SPACE = "\u2581"  # SentencePiece's space mark


def sentencepiece_bpe(pieces, scores, normal, unk_id=None):
  """A tokenizers BPE that encodes as SentencePiece's BPE with byte fallback, no dummy prefix and
  identity normalisation does. pieces/scores: per id; normal: per id, False for control, unknown,
  unused and <0xNN> byte pieces.

  SentencePiece merges the adjacent pair whose concatenation is the highest-scoring piece;
  tokenizers applies the lowest-ranked merge. So every split of each normal piece into two
  normal pieces becomes a merge, ranked by the piece's score. Control pieces and <unk> are in the
  vocabulary but no merge produces them, so text never encodes to them (as in SentencePiece).
  There is no pre-tokeniser: SentencePiece's pieces never hold "▁" after another character.
  """
  vocab = {piece: i for i, piece in enumerate(pieces)}
  merge_from = {p for p, ok in zip(pieces, normal) if ok}
  merges = []
  for i in sorted((i for i, ok in enumerate(normal) if ok), key=lambda i: (-scores[i], i)):
    piece = pieces[i]
    merges += [(piece[:cut], piece[cut:]) for cut in range(1, len(piece))
               if piece[:cut] in merge_from and piece[cut:] in merge_from]
  unk = pieces[unk_id] if unk_id is not None and unk_id >= 0 else None
  tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True,
                                        byte_fallback=True))
  tok.normalizer = normalizers.Replace(" ", SPACE)
  tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(),
                                   decoders.Fuse()])
  return tok


def _byte_decoder():
  """GPT-2's printable-character -> byte table used by byte-level BPE vocabularies."""
  printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
      range(ord("®"), ord("ÿ") + 1))
  chars, extra = list(printable), 0
  for b in range(256):
    if b not in printable:
      printable.append(b)
      chars.append(256 + extra)
      extra += 1
  return {chr(c): b for b, c in zip(printable, chars)}


SAVED_NAME = "tokenizer_ids.json"  # beside tokenizer.json in a fine-tuning workdir


class HFTokenizer:
  """A `tokenizers.Tokenizer` plus the ids our pipeline and evals use."""

  def __init__(self, tokenizer, bos_id, eos_id, pad_id, special_ids=(), path="", chat_template=""):
    self._tok = tokenizer
    self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    self.bos_id, self.eos_id = bos_id, eos_id
    self.pad_id = pad_id if pad_id is not None else eos_id
    self.special_ids = frozenset(special_ids)
    self.path = path
    self.chat_template = chat_template

  def encode(self, text):
    return self._tok.encode(text, add_special_tokens=False).ids

  def decode(self, ids):
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

  def token_byte_lengths(self):
    """[vocab_size] int32: UTF-8 bytes each token stands for (special tokens 0)."""
    lengths = np.zeros(self.vocab_size, np.int32)
    table = _byte_decoder()
    for i in range(self.vocab_size):
      if i in self.special_ids:
        continue
      piece = self._tok.id_to_token(i) or ""
      lengths[i] = len(piece) if all(c in table for c in piece) else len(piece.encode("utf-8"))
    return lengths

  def save(self, directory):
    """tokenizer.json + the ids and chat template beside it (what `load` reads back)."""
    self._tok.save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, SAVED_NAME), "w") as f:
      json.dump(dict(bos_token_id=self.bos_id, eos_token_id=self.eos_id, pad_token_id=self.pad_id,
                     special_ids=sorted(self.special_ids), chat_template=self.chat_template), f, indent=1)

  @classmethod
  def load(cls, directory):
    with open(os.path.join(directory, SAVED_NAME)) as f:
      ids = json.load(f)
    path = os.path.join(directory, "tokenizer.json")
    return cls(tokenizers.Tokenizer.from_file(path), ids["bos_token_id"], ids["eos_token_id"],
               ids["pad_token_id"], ids["special_ids"], path, ids["chat_template"])

  @classmethod
  def from_json(cls, path, config=None):
    """tokenizer.json (+ the model's config.json dict for bos/eos ids when given)."""
    tok = tokenizers.Tokenizer.from_file(path)
    with open(path) as f:
      added = json.load(f).get("added_tokens", [])
    special = [t["id"] for t in added if t.get("special")]
    config = config or {}
    eos = config.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    if eos is None:
      raise ValueError(f"{path}: no eos_token_id in the model's config.json")
    return cls(tok, config.get("bos_token_id"), eos, config.get("pad_token_id"), special, path)

  @classmethod
  def from_gguf(cls, reader, path="<gguf>"):
    field = lambda key: reader.fields[key].contents() if key in reader.fields else None
    kind = field("tokenizer.ggml.model")
    if kind not in ("gpt2", "llama"):
      raise ValueError(f"{path}: GGUF tokenizer model {kind!r} is not supported (supported: gpt2 "
                       "byte-level BPE, llama SentencePiece BPE)")
    tokens, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type")
    ids = [field(f"tokenizer.ggml.{name}_token_id") for name in ("bos", "eos", "padding")]
    if kind == "llama":
      tok = sentencepiece_bpe(tokens, field("tokenizer.ggml.scores"), [t == _NORMAL for t in types],
                              field("tokenizer.ggml.unknown_token_id"))
      return cls(tok, *ids, [i for i, t in enumerate(types) if t == _CONTROL], path,
                 field("tokenizer.chat_template") or "")
    merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges")]
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                     fuse_unk=False, byte_fallback=False)
    tok = tokenizers.Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    special = [i for i, t in enumerate(types) if t == _CONTROL]
    tok.add_special_tokens([tokenizers.AddedToken(tokens[i], special=True, normalized=False)
                            for i in special])
    return cls(tok, *ids, special, path, field("tokenizer.chat_template") or "")
