"""Any of our tokenizers as a Hugging Face `tokenizers.Tokenizer` (tokenizer.json): the one
tokenizer file the Hugging Face export, the GGUF vocabulary and the browser page all read.

Imported models already carry one (`HFTokenizer`). Our own SentencePiece BPE models (byte
fallback, identity normalisation, no dummy prefix; input_pipeline/tokenizer.py) are rewritten as
a tokenizers BPE with the same encoding:
  * normaliser: " " -> "▁" (SentencePiece's space mark); no pre-tokeniser;
  * merges ranked by piece score, byte fallback, control pieces that text never encodes to: see
    `input_pipeline.hf_tokenizer.sentencepiece_bpe` (the GGUF importer reads "llama" vocabularies
    with it too).
tests/test_export.py checks encode() equality with SentencePiece on real text.
"""

from input_pipeline import hf_tokenizer


def sentencepiece_vocab(tokenizer):
  """(pieces, scores, llama.cpp token types) of our SentencePiece `tokenizer`."""
  sp = tokenizer._sp
  pieces, scores, types = [], [], []
  for i in range(sp.vocab_size()):
    pieces.append(sp.id_to_piece(i))
    scores.append(float(sp.get_score(i)))
    types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i)
                 else 6 if sp.is_byte(i) else 1)
  return pieces, scores, types


def from_sentencepiece(tokenizer):
  """tokenizers.Tokenizer equivalent to our SentencePiece `tokenizer` (input_pipeline.tokenizer)."""
  pieces, scores, types = sentencepiece_vocab(tokenizer)
  return hf_tokenizer.sentencepiece_bpe(pieces, scores, [t == 1 for t in types],
                                        tokenizer._sp.unk_id())


def to_tokenizers(tokenizer):
  """The `tokenizers.Tokenizer` behind any tokenizer `training.model_source.load` returns."""
  if isinstance(tokenizer, hf_tokenizer.HFTokenizer):
    return tokenizer._tok
  return from_sentencepiece(tokenizer)


def stop_ids(tokenizer):
  """Ids that end a reply: EOS, and ChatML's end marker / <|endoftext|> where the vocabulary
  has them as special tokens."""
  ids = {tokenizer.eos_id}
  tok = to_tokenizers(tokenizer)
  for marker in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
    i = tok.token_to_id(marker)
    if i is not None and i in getattr(tokenizer, "special_ids", ()):
      ids.add(i)
  return sorted(int(i) for i in ids if i is not None)
