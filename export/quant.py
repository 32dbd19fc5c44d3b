"""Weight quantisation for the exports, and the matching dequantised weights that serve as the
reference for parity tests (a quantised export is compared with our JAX model run on exactly the
weights the runtime reconstructs, so the tolerance stays tight; the quality cost of quantising is
measured separately).

  * int8 (ONNX): symmetric, one float32 scale per output channel (per column of a [in, out]
    matrix, per row of the [V, E] embedding): q = round(w / s), s = max|w| / 127.
  * GGUF block types from the `gguf` package: F16, Q8_0 (32-weight blocks, one f16 scale) and
    Q4_0 (32-weight blocks of 4-bit values, one f16 scale). A matrix whose rows are not a whole
    number of blocks is stored as F16 (as llama.cpp's converter does).
"""

import numpy as np

INT8_MAX = 127.0


def int8_quantise(w, axis):
  """(int8 q, float32 scale) with scale along `axis` (the axis kept per channel)."""
  w = np.asarray(w, np.float32)
  reduce = tuple(a for a in range(w.ndim) if a != axis % w.ndim)
  scale = np.max(np.abs(w), axis=reduce) / INT8_MAX
  scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
  shape = [1] * w.ndim
  shape[axis] = -1
  q = np.clip(np.rint(w / scale.reshape(shape)), -INT8_MAX, INT8_MAX).astype(np.int8)
  return q, scale


def int8_dequantise(q, scale, axis):
  shape = [1] * q.ndim
  shape[axis] = -1
  return q.astype(np.float32) * scale.reshape(shape)


def int8_roundtrip(w, axis):
  return int8_dequantise(*int8_quantise(w, axis), axis)


GGUF_TYPES = ("f16", "q8_0", "q4_0")


def gguf_type(name):
  import gguf
  if name not in GGUF_TYPES:
    raise ValueError(f"GGUF type {name!r} is not supported (supported: {', '.join(GGUF_TYPES)})")
  return gguf.GGMLQuantizationType[name.upper()]


def gguf_quantise(w, name):
  """(data, GGMLQuantizationType) for a float32 tensor [.., row]; 1-D tensors stay float32."""
  import gguf
  w = np.ascontiguousarray(w, np.float32)
  if w.ndim == 1:
    return w, gguf.GGMLQuantizationType.F32
  qtype = gguf_type(name)
  block = gguf.GGML_QUANT_SIZES[qtype][0]
  if w.shape[-1] % block:
    qtype = gguf.GGMLQuantizationType.F16
  if qtype == gguf.GGMLQuantizationType.F16:
    return w.astype(np.float16), qtype
  return gguf.quants.quantize(w, qtype), qtype


def gguf_roundtrip(w, name):
  """The float32 weights llama.cpp reconstructs from `gguf_quantise(w, name)`."""
  import gguf
  data, qtype = gguf_quantise(w, name)
  return np.asarray(gguf.quants.dequantize(data, qtype), np.float32).reshape(np.shape(w))
