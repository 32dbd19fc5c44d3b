"""What every export is checked against: our JAX model's greedy tokens and logits, on the weights
a format actually stores (tests/test_export.py, bench/export_table.py)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from export import gguf_file, onnx_graph, quant, weights as weights_lib
from models import llama_import, transformer

WEIGHTS = ("f32", "f16", "q8_0", "q4_0", "int8")


def reference_params(cfg, params, weights):
  """Our-layout params holding what a format computes with: f32 as is; int8 as the ONNX graph
  expands it; f16/q8_0/q4_0 as llama.cpp dequantises the GGUF file's blocks."""
  if weights == "f32":
    return params
  if weights == "int8":
    return onnx_graph.reference_params(cfg, params, "int8")
  if weights not in quant.GGUF_TYPES:
    raise ValueError(f"weights {weights!r}: one of {', '.join(WEIGHTS)}")
  tensors = gguf_file.tensors(cfg, params)
  back = {}
  for name in weights_lib.torch_tensors(cfg, params):
    g = gguf_file.gguf_name(name)
    w = quant.gguf_roundtrip(tensors[g], gguf_file.tensor_type(cfg, g, weights))
    if name.endswith("q_proj.weight"):
      w = llama_import._unpermute_rotary(w, cfg.num_heads)
    elif name.endswith("k_proj.weight"):
      w = llama_import._unpermute_rotary(w, cfg.num_kv_heads)
    back[name] = w
  return llama_import.params_from_torch_layout(back.__getitem__, cfg)


def jax_greedy(cfg, params, ids, new_tokens, width=64):
  """Greedy tokens and last-position logits per step by full forward passes (no KV cache: a path
  independent of the exports' caches). Rows are padded to `width` (a causal model: padding after
  the last real token changes nothing), so one compilation serves every step."""
  width = max(width, len(ids) + new_tokens)
  graphdef, _ = transformer.split_model(transformer.abstract_model(cfg))
  forward = jax.jit(lambda p, t: nnx.merge(graphdef, p)(t)[0][0])
  seq, tokens, logits = list(ids), [], []
  for _ in range(new_tokens):
    padded = np.zeros((1, width), np.int32)
    padded[0, :len(seq)] = seq
    row = np.asarray(forward(params, jnp.asarray(padded)))[len(seq) - 1]
    logits.append(row)
    tokens.append(int(np.argmax(row)))
    seq.append(tokens[-1])
  return tokens, logits
