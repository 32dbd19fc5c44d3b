"""Our decoder as one ONNX graph built with the `onnx` helper API (no torch, no tracing): the same
graph does the prefill and each decode step, with the KV cache as explicit inputs and outputs.

  inputs   input_ids int64 [batch, seq]
           past_key_{i}, past_value_{i} float32 [batch, kv_heads, past, head_dim], i < num_layers
           (past = 0 for the first call: zero-size tensors)
  outputs  logits float32 [batch, vocab] at the LAST position (what sampling needs; a prefill
           of a long prompt would otherwise return seq x vocab floats)
           present_key_{i}, present_value_{i} [batch, kv_heads, past + seq, head_dim]

Positions are past + arange(seq), computed in the graph, so a caller only keeps the cache. Rows
of a batch share one length (no padding mask). Rotary embeddings use the rotate-half layout, as
our JAX model and Hugging Face do. LLaMA and PaLM blocks, RMSNorm and LayerNorm, MHA/GQA/MQA and
tied or separate output heads are all expressible.

weights="int8" (else "f32"): every matrix is stored as int8 with a float32 scale per output channel and
expanded (Cast, Mul) inside the graph: weight-only quantisation, a 4x smaller file and download,
float32 arithmetic (the runtime folds the expansion once when it loads the model, so memory and
speed are those of float32). `reference_params` gives the weights the runtime computes with.
Opset 17 (onnxruntime and onnxruntime-web both run it).
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export import quant, weights as weights_lib
from input_pipeline import files

OPSET = 17
WEIGHTS = ("f32", "int8")
MAX_BYTES = 2**31 - 1  # a protobuf message's limit: one .onnx file (we write no external data)


class _Builder:
  """Appends nodes with generated output names; initializers via `const`."""

  def __init__(self):
    self.nodes, self.initializers, self._count, self._names = [], [], 0, set()

  def op(self, kind, *inputs, outputs=1, name=None, **attrs):
    self._count += 1
    names = [name] if name else [f"{kind.lower()}_{self._count}_{j}" for j in range(outputs)]
    self.nodes.append(helper.make_node(kind, list(inputs), names, **attrs))
    return names[0] if outputs == 1 else names

  def const(self, name, value):
    """An initializer; a name already defined is reused (shape constants shared by layers)."""
    if name not in self._names:
      self._names.add(name)
      self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
    return name


def _weight(b, name, w, axis, int8):
  """A float32 matrix in the graph: the initializer itself, or int8 + scale -> DequantizeLinear."""
  if not int8:
    return b.const(name, np.ascontiguousarray(w, np.float32))
  q, scale = quant.int8_quantise(w, axis)
  shape = [1] * q.ndim
  shape[axis] = -1
  # Cast + Mul, not DequantizeLinear: onnxruntime rewrites DequantizeLinear -> MatMul into a
  # quantised matmul with dynamically quantised activations (different numbers, and slower in our
  # measurement); Cast + Mul of initializers is folded to float32 once, at session creation.
  return b.op("Mul", b.op("Cast", b.const(name + ".int8", q), to=TensorProto.FLOAT),
              b.const(name + ".scale", scale.reshape(shape)))


def _norm(b, cfg, x, scale_name, scale):
  axes = [-1]
  if cfg.norm == "layer":
    x = b.op("Sub", x, b.op("ReduceMean", x, axes=axes, keepdims=1))
  variance = b.op("ReduceMean", b.op("Mul", x, x), axes=axes, keepdims=1)
  eps = b.const(f"{scale_name}.eps", np.array(cfg.norm_eps, np.float32))
  inv = b.op("Reciprocal", b.op("Sqrt", b.op("Add", variance, eps)))
  return b.op("Mul", b.op("Mul", x, inv), b.const(scale_name, scale.astype(np.float32)))


def _rotary(b, x, cos, sin):
  """Rotate-half RoPE on x [B, S, heads, H]; cos/sin [1, S, 1, H/2]."""
  x1, x2 = b.op("Split", x, axis=-1, outputs=2)
  return b.op("Concat", b.op("Sub", b.op("Mul", x1, cos), b.op("Mul", x2, sin)),
              b.op("Add", b.op("Mul", x2, cos), b.op("Mul", x1, sin)), axis=-1)


def _attention(b, cfg, x, w, i, cos, sin, mask, int8):
  e, n, k, h = cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
  p = f"layers.{i}.attn"
  proj = lambda name, mat: b.op("MatMul", x, _weight(b, f"{p}.{name}", mat, 1, int8))
  heads = lambda t, count: b.op("Reshape", t, b.const(f"{p}.shape{count}", np.array([0, 0, count, h], np.int64)))
  q = heads(proj("wq", w["wq"].reshape(e, n * h) * h**-0.5), n)  # the 1/sqrt(H) folded into wq
  key = heads(proj("wk", w["wk"].reshape(e, k * h)), k)
  value = heads(proj("wv", w["wv"].reshape(e, k * h)), k)
  q = b.op("Transpose", _rotary(b, q, cos, sin), perm=[0, 2, 1, 3])  # [B, N, S, H]
  key = b.op("Transpose", _rotary(b, key, cos, sin), perm=[0, 2, 1, 3])  # [B, K, S, H]
  value = b.op("Transpose", value, perm=[0, 2, 1, 3])
  key = b.op("Concat", f"past_key_{i}", key, axis=2, name=f"present_key_{i}")  # [B, K, T, H]
  value = b.op("Concat", f"past_value_{i}", value, axis=2, name=f"present_value_{i}")
  # Grouped-query attention: queries [B, K, G, S, H] against keys [B, K, 1, T, H] (broadcast).
  q = b.op("Reshape", q, b.const(f"{p}.groups", np.array([0, k, n // k, -1, h], np.int64)))
  one = b.const(f"{p}.axis2", np.array([2], np.int64))
  scores = b.op("MatMul", q, b.op("Transpose", b.op("Unsqueeze", key, one), perm=[0, 1, 2, 4, 3]))
  lowest = b.const(f"{p}.lowest", np.array(np.finfo(np.float32).min, np.float32))
  probs = b.op("Softmax", b.op("Where", mask, scores, lowest), axis=-1)
  out = b.op("MatMul", probs, b.op("Unsqueeze", value, one))  # [B, K, G, S, H]
  out = b.op("Reshape", out, b.const(f"{p}.heads", np.array([0, n, -1, h], np.int64)))
  out = b.op("Reshape", b.op("Transpose", out, perm=[0, 2, 1, 3]),
             b.const(f"{p}.merge", np.array([0, 0, n * h], np.int64)))
  return b.op("MatMul", out, _weight(b, f"{p}.wo", w["wo"].reshape(n * h, e), 1, int8))


def _mlp(b, x, w, i, int8):
  p = f"layers.{i}.mlp"
  gate = b.op("MatMul", x, _weight(b, f"{p}.gate", w["gate"], 1, int8))
  up = b.op("MatMul", x, _weight(b, f"{p}.up", w["up"], 1, int8))
  hidden = b.op("Mul", b.op("Mul", gate, b.op("Sigmoid", gate)), up)
  return b.op("MatMul", hidden, _weight(b, f"{p}.down", w["down"], 1, int8))


def _positions(b, cfg):
  """(cos, sin [1, S, 1, H/2], causal mask [S, T]) from the past length and input length."""
  scalar = lambda t: b.op("Squeeze", t, b.const("axis0", np.array([0], np.int64)))
  dim = lambda t, d: scalar(b.op("Slice", b.op("Shape", t), b.const(f"dim{d}", np.array([d], np.int64)),
                                 b.const(f"dim{d}_end", np.array([d + 1], np.int64))))
  past, seq = dim("past_key_0", 2), dim("input_ids", 1)
  step = b.const("one", np.array(1, np.int64))
  total = b.op("Add", past, seq)
  query_slots = b.op("Range", past, total, step)  # [S]
  key_slots = b.op("Range", b.const("zero", np.array(0, np.int64)), total, step)  # [T]
  last = b.const("last_axis", np.array([1], np.int64))
  mask = b.op("LessOrEqual", b.op("Unsqueeze", key_slots, b.const("axis0_", np.array([0], np.int64))),
              b.op("Unsqueeze", query_slots, last))  # [S, T]: key slot <= query slot
  half = cfg.head_dim // 2
  freqs = (cfg.rope_theta ** (-np.arange(half, dtype=np.float32) / half)).astype(np.float32)
  angles = b.op("Mul", b.op("Unsqueeze", b.op("Cast", query_slots, to=TensorProto.FLOAT), last),
                b.const("rope_freqs", freqs[None]))  # [S, H/2]
  shape = b.const("rope_shape", np.array([1, -1, 1, half], np.int64))
  return b.op("Reshape", b.op("Cos", angles), shape), b.op("Reshape", b.op("Sin", angles), shape), mask


def build(cfg, params, weights="f32", name="frugal"):
  """onnx.ModelProto of the decoder `cfg` with `params` (our layout)."""
  if weights not in WEIGHTS:
    raise ValueError(f"ONNX weights {weights!r} not supported (supported: {', '.join(WEIGHTS)})")
  weights_lib.check(cfg, "onnx")
  int8 = weights == "int8"
  b = _Builder()
  embedding = weights_lib.array(params["embedding"])
  table = _weight(b, "embedding", embedding, 0, int8)
  x = b.op("Gather", table, "input_ids", axis=0)  # [B, S, E]
  cos, sin, mask = _positions(b, cfg)
  for i in range(cfg.num_layers):
    w = weights_lib.layer(cfg, params, i)
    if cfg.block == "palm":
      y = _norm(b, cfg, x, f"layers.{i}.norm", w["norm"]["scale"])
      x = b.op("Add", b.op("Add", x, _attention(b, cfg, y, w["attn"], i, cos, sin, mask, int8)),
               _mlp(b, y, w["mlp"], i, int8))
    else:
      y = _norm(b, cfg, x, f"layers.{i}.attn_norm", w["attn_norm"]["scale"])
      x = b.op("Add", x, _attention(b, cfg, y, w["attn"], i, cos, sin, mask, int8))
      y = _norm(b, cfg, x, f"layers.{i}.mlp_norm", w["mlp_norm"]["scale"])
      x = b.op("Add", x, _mlp(b, y, w["mlp"], i, int8))
  # Only the last position's logits: gather index seq - 1 on the length axis.
  seq = b.op("Shape", "input_ids", start=1, end=2)
  last = b.op("Sub", seq, b.const("one_1d", np.array([1], np.int64)))
  x = b.op("Squeeze", b.op("Gather", x, last, axis=1), b.const("axis1", np.array([1], np.int64)))
  x = _norm(b, cfg, x, "final_norm", weights_lib.array(params["final_norm"]["scale"]))
  if cfg.tie_embeddings:
    b.op("Gemm", x, table, transB=1, name="logits")
  else:
    b.op("MatMul", x, _weight(b, "lm_head", weights_lib.output_head(cfg, params), 1, int8), name="logits")

  kv = lambda n: helper.make_tensor_value_info(
      n, TensorProto.FLOAT, ["batch", cfg.num_kv_heads, "past" if n.startswith("past") else "total", cfg.head_dim])
  inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])]
  outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", cfg.vocab_size])]
  for i in range(cfg.num_layers):
    inputs += [kv(f"past_key_{i}"), kv(f"past_value_{i}")]
    outputs += [kv(f"present_key_{i}"), kv(f"present_value_{i}")]
  size = sum(len(t.raw_data) for t in b.initializers)
  if size > MAX_BYTES:
    raise weights_lib.UnsupportedModel(
        f"onnx: {size / 2**30:.1f} GiB of {weights} weights exceed the 2 GiB a single .onnx file "
        "can hold (external weight files are not written); try weights='int8'")
  graph = helper.make_graph(b.nodes, name, inputs, outputs, b.initializers)
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                            producer_name="frugal")
  model.ir_version = 8  # what onnxruntime(-web) >= 1.14 reads
  return model


def reference_params(cfg, params, weights):
  """The weights the runtime computes with (int8: quantised and expanded again), our layout.
  Tests run our JAX model on these to compare with onnxruntime at float32 tolerance."""
  if weights == "f32":
    return params
  layers = [weights_lib.layer(cfg, params, i) for i in range(cfg.num_layers)]
  for layer in layers:
    for group, names in (("attn", ("wq", "wk", "wv", "wo")), ("mlp", ("gate", "up", "down"))):
      for wname in names:
        w = layer[group][wname]
        flat = w.reshape(w.shape[0], -1) if wname != "wo" else w.reshape(-1, w.shape[-1])
        if wname == "wq":  # the graph quantises wq with the attention scale folded in
          h = cfg.head_dim**-0.5
          flat = quant.int8_roundtrip(flat * h, 1) / h
        else:
          flat = quant.int8_roundtrip(flat, 1)
        layer[group][wname] = flat.reshape(w.shape)
  out = dict(params)
  out["embedding"] = quant.int8_roundtrip(weights_lib.array(params["embedding"]), 0)
  if not cfg.tie_embeddings:
    out["lm_head"] = quant.int8_roundtrip(weights_lib.array(params["lm_head"]), 1)
  if cfg.scan_layers:
    stack = lambda nodes: ({k: stack([n[k] for n in nodes]) for k in nodes[0]}
                           if isinstance(nodes[0], dict) else np.stack(nodes))
    out["layers"] = stack(layers)
  else:
    out["layers"] = dict(enumerate(layers))
  return out


def save(model, path):
  """Write atomically (input_pipeline/files.py): a failed export leaves no half file."""
  with files.atomic_path(path) as tmp:
    onnx.save_model(model, tmp)
  return path


def session(path, threads=1):
  """An onnxruntime CPU session on `threads` intra-op threads (the page's default is 1)."""
  import onnxruntime as ort
  options = ort.SessionOptions()
  options.intra_op_num_threads = threads
  options.log_severity_level = 3
  return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def greedy(sess, cfg, ids, new_tokens):
  """Greedy decoding with the exported graph: one prefill call, then one call per token with the
  cache fed back. Returns (tokens, [logits per step], prefill seconds, decode seconds)."""
  import time
  empty = np.zeros((1, cfg.num_kv_heads, 0, cfg.head_dim), np.float32)
  feeds = {"input_ids": np.asarray([ids], np.int64)}
  feeds.update({f"past_{kind}_{i}": empty for i in range(cfg.num_layers) for kind in ("key", "value")})
  names = [o.name for o in sess.get_outputs()]
  tokens, logits = [], []
  start = time.perf_counter()
  out = sess.run(names, feeds)
  prefill = time.perf_counter() - start
  start = time.perf_counter()
  for step in range(new_tokens):
    logits.append(out[0][0])
    tokens.append(int(np.argmax(out[0][0])))
    if step == new_tokens - 1:
      break
    feeds = {"input_ids": np.asarray([[tokens[-1]]], np.int64)}
    feeds.update({n.replace("present_", "past_"): v for n, v in zip(names[1:], out[1:])})
    out = sess.run(names, feeds)
  return tokens, logits, prefill, time.perf_counter() - start
