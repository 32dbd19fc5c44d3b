"""GGUF (llama.cpp) files written with the `gguf` package: f16, q8_0 or q4_0 weights, the
"llama" architecture's metadata and the tokenizer, so llama.cpp (and our own importer) can load
them.

Rotary layout: our model (like Hugging Face) rotates the two HALVES of each head (rotate-half);
llama.cpp's "llama" graph rotates interleaved PAIRS (dims 2i, 2i+1). The rows of wq/wk are
therefore permuted so that half-dimension j of head h lands on pair position 2j (cos part) and
2j+1 (sin part), which is exactly the inverse of models/llama_import.py's `_unpermute_rotary`.

Weights: 2-D tensors in the file's type (1-D norm scales in f32; matrices whose rows are not whole
blocks in f16; in q4_0 files the output projection in q8_0: `tensor_type`).

Tokenizers: a byte-level BPE (SmolLM2 and other "gpt2"-style vocabularies) is written as
tokenizer.ggml.model "gpt2" with its merges; our SentencePiece BPE (or its tokenizer.json form) as
"llama" with piece scores and token types (no dummy prefix, no BOS added, as we train it).
"""

import json


from export import quant, tokenizer_json, weights as weights_lib
from input_pipeline import files, hf_tokenizer
from models import llama_import

_HF_TO_GGUF = llama_import._GGUF_NAMES


def permute_rotary(w, heads):
  """Hugging Face rotate-half rows [heads*H, E] -> llama.cpp's interleaved rows."""
  return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf_name):
  if hf_name.startswith("model.layers."):
    i, rest = hf_name[len("model.layers."):].split(".", 1)
    return f"blk.{i}.{_HF_TO_GGUF[rest]}"
  return _HF_TO_GGUF[hf_name]


def tensors(cfg, params):
  """{GGUF tensor name: float32 array [out, in]} in llama.cpp's rotary layout."""
  out = {}
  for name, w in weights_lib.torch_tensors(cfg, params).items():
    if name.endswith("self_attn.q_proj.weight"):
      w = permute_rotary(w, cfg.num_heads)
    elif name.endswith("self_attn.k_proj.weight"):
      w = permute_rotary(w, cfg.num_kv_heads)
    out[gguf_name(name)] = w
  return out


def _source_field(config, key):
  """A metadata value of the GGUF file the model was imported from (e.g. tokenizer.ggml.pre)."""
  source = config.get("source") if hasattr(config, "get") else None
  if source is None or source.get("kind") != "gguf":
    return None
  import gguf
  field = gguf.GGUFReader(source.path).fields.get(key)
  return None if field is None else field.contents()


def _sentencepiece_style(spec):
  """A tokenizer.json BPE with byte fallback on "▁"-marked text (what our SentencePiece models and
  Hugging Face LLaMA-2-style tokenizers are)."""
  return (spec["model"].get("type") == "BPE" and spec["model"].get("byte_fallback")
          and hf_tokenizer.SPACE in json.dumps(spec.get("normalizer"), ensure_ascii=False))


def _vocab_from_json(tokenizer, spec):
  """(pieces, scores, token types) of a SentencePiece-style tokenizer.json: a piece's score is
  minus the rank of the first merge that makes it, which orders merges as the file does."""
  tok = tokenizer_json.to_tokenizers(tokenizer)
  pieces = [tok.id_to_token(i) for i in range(tokenizer.vocab_size)]
  first = {}
  for rank, merge in enumerate(spec["model"]["merges"]):
    left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
    first.setdefault(left + right, rank)
  unk = spec["model"].get("unk_token")
  scores = [-float(first.get(p, 0)) for p in pieces]
  types = [3 if i in tokenizer.special_ids else 2 if p == unk else
           6 if len(p) == 6 and p.startswith("<0x") and p.endswith(">") else 1
           for i, p in enumerate(pieces)]
  return pieces, scores, types


def _write_tokenizer(writer, config, tokenizer):
  if isinstance(tokenizer, hf_tokenizer.HFTokenizer):
    spec = json.loads(tokenizer_json.to_tokenizers(tokenizer).to_str())
    byte_level = "ByteLevel" in json.dumps(spec.get("pre_tokenizer")) and spec["model"].get("type") == "BPE"
    if not (byte_level or _sentencepiece_style(spec)):
      raise weights_lib.UnsupportedModel(
          "gguf: only byte-level BPE (gpt2) and SentencePiece-style BPE tokenizers can be "
          f"written; {tokenizer.path} has pre_tokenizer {spec.get('pre_tokenizer')} and model "
          f"{spec['model'].get('type')}")
  if isinstance(tokenizer, hf_tokenizer.HFTokenizer) and byte_level:
    tok = tokenizer_json.to_tokenizers(tokenizer)
    tokens = [tok.id_to_token(i) for i in range(tokenizer.vocab_size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_source_field(config, "tokenizer.ggml.pre") or "default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in tokenizer.special_ids else 1 for i in range(len(tokens))])
    writer.add_token_merges(merges)
  else:
    if isinstance(tokenizer, hf_tokenizer.HFTokenizer):
      pieces, scores, types = _vocab_from_json(tokenizer, spec)
    else:
      pieces, scores, types = tokenizer_json.sentencepiece_vocab(tokenizer)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_add_space_prefix(False)
    if 2 in types:
      writer.add_unk_token_id(types.index(2))
  if getattr(tokenizer, "chat_template", ""):
    writer.add_chat_template(tokenizer.chat_template)
  if tokenizer.bos_id is not None and tokenizer.bos_id >= 0:
    writer.add_bos_token_id(int(tokenizer.bos_id))
  writer.add_eos_token_id(int(tokenizer.eos_id))
  if tokenizer.pad_id is not None:
    writer.add_pad_token_id(int(tokenizer.pad_id))
  writer.add_add_bos_token(False)  # our models are trained and evaluated without a BOS prefix


def tensor_type(cfg, tensor_name, weight_type):
  """The type a tensor is stored in. As llama.cpp's quantiser does, the output projection (the
  token embedding when tied) keeps more precision in 4-bit files: llama.cpp picks Q6_K, which the
  gguf package cannot write, so it is Q8_0 here."""
  output = "output.weight" if not cfg.tie_embeddings else "token_embd.weight"
  return "q8_0" if weight_type == "q4_0" and tensor_name == output else weight_type


_FILE_TYPES = {"f16": 1, "q8_0": 7, "q4_0": 2}  # llama.cpp's LLAMA_FTYPE_MOSTLY_*


def write(config, params, tokenizer, path, weight_type="f16", max_seq_len=2048, name="frugal"):
  """Write the GGUF file `path` (to a temporary name, renamed when complete)."""
  import gguf
  weights_lib.check(config.model, "gguf")
  quant.gguf_type(weight_type)  # a clear error for an unknown type before any work
  with files.atomic_path(path) as tmp:
    writer = gguf.GGUFWriter(tmp, "llama")
    try:
      _write(writer, config, params, tokenizer, weight_type, max_seq_len, name)
    finally:
      writer.close()  # before the rename, or before the half file is removed
  return path


def _write(writer, config, params, tokenizer, weight_type, max_seq_len, name):
  """Metadata, tokenizer and tensors, in the order GGUFWriter requires."""
  cfg = config.model
  writer.add_name(name)
  writer.add_context_length(int(max_seq_len))
  writer.add_embedding_length(int(cfg.embed_dim))
  writer.add_block_count(int(cfg.num_layers))
  writer.add_feed_forward_length(int(cfg.mlp_dim))
  writer.add_head_count(int(cfg.num_heads))
  writer.add_head_count_kv(int(cfg.num_kv_heads))
  writer.add_key_length(int(cfg.head_dim))
  writer.add_value_length(int(cfg.head_dim))
  writer.add_rope_dimension_count(int(cfg.head_dim))
  writer.add_rope_freq_base(float(cfg.rope_theta))
  writer.add_layer_norm_rms_eps(float(cfg.norm_eps))
  writer.add_vocab_size(int(cfg.vocab_size))
  writer.add_file_type(_FILE_TYPES[weight_type])
  _write_tokenizer(writer, config, tokenizer)
  for tensor_name, w in tensors(cfg, params).items():
    data, qtype = quant.gguf_quantise(w, tensor_type(cfg, tensor_name, weight_type))
    writer.add_tensor(tensor_name, data, raw_dtype=qtype)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
