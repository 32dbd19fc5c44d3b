"""Export one model to several formats: the function behind `python -m export` (export/__main__.py
lists the formats and where each goes)."""

import os
import time

from export import gguf_file, hf, onnx_graph, tokenizer_json, weights, web_bundle
from training import model_source

FORMATS = ("hf", "gguf-f16", "gguf-q8_0", "gguf-q4_0", "onnx", "onnx-int8", "web")


def check_formats(formats):
  unknown = [f for f in formats if f not in FORMATS]
  if unknown or not formats:
    raise ValueError(f"--format {','.join(formats)}: unknown format(s) {unknown}; "
                     f"supported: {', '.join(FORMATS)}")


def export(source, formats, out, *, name="", max_seq_len=0, web_variants=("int8", "f32"), docs="",
           data_dir=""):
  """Export `source` to each of `formats` under `out`; returns {format: path}."""
  check_formats(formats)
  config, _, params, tokenizer = model_source.load(source)
  for fmt in formats:  # refuse before writing anything
    weights.check(config.model, "onnx" if fmt in ("onnx", "onnx-int8", "web") else fmt.split("-")[0])
  name = name or os.path.basename(os.path.normpath(source))
  max_seq_len = max_seq_len or (config.seq_len if config.get("source") is None else 2048)
  os.makedirs(out, exist_ok=True)
  written = {}
  for fmt in formats:
    start = time.time()
    if fmt == "hf":
      path = hf.write(config, params, tokenizer, os.path.join(out, "hf"), max_seq_len)
    elif fmt.startswith("gguf-"):
      kind = fmt.split("-", 1)[1]
      path = gguf_file.write(config, params, tokenizer, os.path.join(out, f"model-{kind}.gguf"), kind,
                             max_seq_len, name)
    elif fmt.startswith("onnx"):
      variant = "int8" if fmt == "onnx-int8" else "f32"
      path = os.path.join(out, f"model-{variant}.onnx")
      onnx_graph.save(onnx_graph.build(config.model, params, variant, name), path)
      tokenizer_json.to_tokenizers(tokenizer).save(os.path.join(out, "tokenizer.json"))
    else:
      path = web_bundle.write(config, params, tokenizer, os.path.join(out, "web"), name=name,
                              variants=tuple(web_variants), docs=docs, max_seq_len=max_seq_len,
                              data_dir=data_dir)
    written[fmt] = path
    print(f"{fmt:10s} {path}  {_size(path) / 1e6:.1f} MB  {time.time() - start:.1f} s", flush=True)
  return written


def _size(path):
  if os.path.isfile(path):
    return os.path.getsize(path)
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
