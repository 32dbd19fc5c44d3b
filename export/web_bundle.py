"""The browser page's bundle: ONNX model variants, tokenizer.json, the ReAct section and the
document index for in-page search, listed in manifest.json with each file's size and sha256 (the
page checks both before it hands a file to onnxruntime-web, so a truncated or corrupt download is
a clear message, not a hung page). web/serve.py serves a bundle at /model/.
"""

import hashlib
import json
import os

from export import onnx_graph, tokenizer_json
from input_pipeline import files, sft

FORMAT_VERSION = 1
VARIANTS = onnx_graph.WEIGHTS  # manifest model names: the weights of each ONNX file


def file_entry(directory, name):
  digest = hashlib.sha256()
  with open(os.path.join(directory, name), "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return {"file": name, "bytes": os.path.getsize(os.path.join(directory, name)),
          "sha256": digest.hexdigest()}


def write(config, params, tokenizer, out_dir, *, name, variants=("int8", "f32"), docs="",
          max_seq_len=2048, data_dir=""):
  """Write the bundle directory `out_dir` (built beside it, renamed into place when complete).
  variants: ONNX weight variants, the first is the page's default. docs: the document collection
  for search/lookup (see export/search_index.py; "" for none: the page then offers the calculator
  only)."""
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown or not variants:
    raise ValueError(f"web variants {list(variants)}: each must be one of {sorted(VARIANTS)}")
  cfg = config.model
  with files.atomic_directory(out_dir) as tmp:
    models = []
    for variant in variants:
      file = f"model-{variant}.onnx"
      onnx_graph.save(onnx_graph.build(cfg, params, variant, name), os.path.join(tmp, file))
      models.append(dict(name=variant, **file_entry(tmp, file)))
    tokenizer_json.to_tokenizers(tokenizer).save(os.path.join(tmp, "tokenizer.json"))
    manifest = {
        "frugal_web": FORMAT_VERSION, "name": name, "models": models,
        "num_layers": int(cfg.num_layers), "num_kv_heads": int(cfg.num_kv_heads),
        "head_dim": int(cfg.head_dim), "vocab_size": int(cfg.vocab_size),
        "max_seq_len": int(max_seq_len),
        "tokenizer": file_entry(tmp, "tokenizer.json"),
        "bos_id": None if tokenizer.bos_id is None or tokenizer.bos_id < 0 else int(tokenizer.bos_id),
        "eos_ids": tokenizer_json.stop_ids(tokenizer),
        "chat_template": sft.model_template(config, tokenizer) or "plain",
    }
    manifest.update(_react(tmp, docs, data_dir))
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
      json.dump(manifest, f, indent=1)
  return out_dir


def _react(directory, docs, data_dir):
  """manifest["react"] and manifest["docs"]: the prompt and settings of the page's ReAct loop
  (export/search_index.py, from the same prompt files as eval/react) and the document index."""
  from export import search_index
  out = {"react": search_index.react_section(docs=docs, data_dir=data_dir)}
  if docs:
    search_index.write_docs_index(os.path.join(directory, "docs.json"), docs, data_dir=data_dir)
    out["docs"] = file_entry(directory, "docs.json")
  return out
