"""Real LLaMA-architecture checkpoints -> our Decoder's config and params (numpy, float32).

Two sources, one parameter layout:
  * Hugging Face: a directory with config.json, *.safetensors and tokenizer.json.
  * GGUF (llama.cpp): one file; quantised tensors (Q4_0, Q4_1, Q8_0, K-quants, ...) are
    dequantised with the `gguf` package. llama.cpp stores q/k projections with the rotary pairs
    interleaved; we use the Hugging Face rotate-half layout, so those rows are un-permuted here.

Weight layouts (ours): embedding [V, E], wq [E, N, H], wk/wv [E, K, H], wo [N, H, E],
gate/up [E, F], down [F, E], lm_head [E, V]; torch/GGUF matrices are [out, in].
"""

import glob
import json
import os

import numpy as np

from models.config import model_config

SUPPORTED_GGUF_ARCHITECTURES = ("llama",)


def _model_config(**fields):
  # Inference on imported models: float32, no remat; attention is ours (einsum).
  return model_config(block="llama", remat="none", scan_layers=True, **fields)


def config_from_hf(hf):
  """config.json dict (model_type llama / mistral-like) -> our model ConfigDict."""
  if hf.get("model_type") not in ("llama", "mistral"):
    raise ValueError(f"config.json model_type {hf.get('model_type')!r} is not a LLaMA-architecture "
                     "model (supported: llama, mistral)")
  if hf.get("attention_bias") or hf.get("mlp_bias"):
    raise ValueError("config.json asks for attention/MLP biases; our LLaMA block has none")
  if hf.get("rope_scaling"):
    raise ValueError(f"config.json rope_scaling {hf['rope_scaling']} is not supported")
  heads = hf["num_attention_heads"]
  rope = hf.get("rope_parameters") or {}
  return _model_config(
      vocab_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"], embed_dim=hf["hidden_size"],
      num_heads=heads, num_kv_heads=hf.get("num_key_value_heads") or heads,
      head_dim=hf.get("head_dim") or hf["hidden_size"] // heads, mlp_dim=hf["intermediate_size"],
      rope_theta=float(hf.get("rope_theta") or rope.get("rope_theta", 10000.0)),
      norm_eps=float(hf.get("rms_norm_eps", 1e-6)), tie_embeddings=bool(hf.get("tie_word_embeddings")))


def params_from_torch_layout(get, cfg):
  """Our nested params from `get(hf_name) -> np.ndarray [out, in]` (Hugging Face tensor names)."""
  e, n, k, h = cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
  layers = []
  for i in range(cfg.num_layers):
    p = f"model.layers.{i}."
    layers.append(dict(
        attn=dict(wq=get(p + "self_attn.q_proj.weight").T.reshape(e, n, h),
                  wk=get(p + "self_attn.k_proj.weight").T.reshape(e, k, h),
                  wv=get(p + "self_attn.v_proj.weight").T.reshape(e, k, h),
                  wo=get(p + "self_attn.o_proj.weight").T.reshape(n, h, e)),
        attn_norm=dict(scale=get(p + "input_layernorm.weight")),
        mlp=dict(gate=get(p + "mlp.gate_proj.weight").T, up=get(p + "mlp.up_proj.weight").T,
                 down=get(p + "mlp.down_proj.weight").T),
        mlp_norm=dict(scale=get(p + "post_attention_layernorm.weight"))))
  params = dict(embedding=get("model.embed_tokens.weight"),
                final_norm=dict(scale=get("model.norm.weight")))
  if cfg.scan_layers:
    params["layers"] = _stack(layers)
  else:
    params["layers"] = {i: layer for i, layer in enumerate(layers)}
  if not cfg.tie_embeddings:
    params["lm_head"] = get("lm_head.weight").T
  return _as_float32(params)


def load_hf(directory):
  """(model ConfigDict, params) from a Hugging Face LLaMA directory (safetensors only)."""
  from safetensors.numpy import load_file
  config_path = os.path.join(directory, "config.json")
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"{directory} has no config.json; not a Hugging Face model directory")
  with open(config_path) as f:
    cfg = config_from_hf(json.load(f))
  files = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
  if not files:
    raise FileNotFoundError(f"{directory} has no *.safetensors weights (.bin files are not read)")
  tensors = {}
  for file in files:
    tensors.update(load_file(file))

  def get(name):
    if name not in tensors:
      raise KeyError(f"{directory}: tensor {name} missing from the safetensors files")
    return np.asarray(tensors[name], np.float32)

  return cfg, params_from_torch_layout(get, cfg)


def _field(reader, key, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def config_from_gguf(reader, path="<gguf>"):
  arch = _field(reader, "general.architecture")
  if arch not in SUPPORTED_GGUF_ARCHITECTURES:
    raise ValueError(f"{path}: GGUF architecture {arch!r} is not supported "
                     f"(supported: {', '.join(SUPPORTED_GGUF_ARCHITECTURES)})")
  g = lambda key, default=None: _field(reader, f"{arch}.{key}", default)
  embed, heads = int(g("embedding_length")), int(g("attention.head_count"))
  names = {t.name for t in reader.tensors}
  vocab = g("vocab_size") or len(_field(reader, "tokenizer.ggml.tokens"))
  if g("rope.scaling.type") not in (None, "none"):
    raise ValueError(f"{path}: rope scaling {g('rope.scaling.type')!r} is not supported")
  return _model_config(
      vocab_size=int(vocab), num_layers=int(g("block_count")), embed_dim=embed, num_heads=heads,
      num_kv_heads=int(g("attention.head_count_kv", heads)),
      head_dim=int(g("attention.key_length", embed // heads)), mlp_dim=int(g("feed_forward_length")),
      rope_theta=float(g("rope.freq_base", 10000.0)),
      norm_eps=float(g("attention.layer_norm_rms_epsilon", 1e-6)),
      tie_embeddings="output.weight" not in names)


def _unpermute_rotary(w, heads):
  """llama.cpp's interleaved rotary rows [heads*H, E] -> Hugging Face rotate-half rows."""
  return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight", "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
    "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
}


def load_gguf(path):
  """(model ConfigDict, params, gguf.GGUFReader) from a llama.cpp GGUF file."""
  import gguf
  if not os.path.isfile(path):
    raise FileNotFoundError(f"GGUF file {path} does not exist")
  try:
    reader = gguf.GGUFReader(path)
  except Exception as e:  # the reader raises ValueError/struct errors on a damaged file
    raise ValueError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from e
  cfg = config_from_gguf(reader, path)
  tensors = {t.name: t for t in reader.tensors}

  def get(hf_name):
    if hf_name.startswith("model.layers."):
      i, rest = hf_name[len("model.layers."):].split(".", 1)
      name = f"blk.{i}.{_GGUF_NAMES[rest]}"
    else:
      name = _GGUF_NAMES[hf_name]
    if name not in tensors:
      raise KeyError(f"{path}: tensor {name} missing")
    t = tensors[name]
    try:
      w = gguf.quants.dequantize(t.data, t.tensor_type)
    except NotImplementedError as e:
      raise ValueError(f"{path}: tensor {name} has type {t.tensor_type.name}, which the gguf "
                       f"package cannot dequantise") from e
    w = np.asarray(w, np.float32).reshape(tuple(int(d) for d in reversed(t.shape)))
    if _is_projection(hf_name, "q_proj"):
      w = _unpermute_rotary(w, cfg.num_heads)
    elif _is_projection(hf_name, "k_proj"):
      w = _unpermute_rotary(w, cfg.num_kv_heads)
    return w

  return cfg, params_from_torch_layout(get, cfg), reader


def _is_projection(hf_name, projection):
  return hf_name.endswith(f"self_attn.{projection}.weight")


def _stack(layers):
  if isinstance(layers[0], dict):
    return {key: _stack([layer[key] for layer in layers]) for key in layers[0]}
  return np.stack(layers)


def _as_float32(tree):
  if isinstance(tree, dict):
    return {k: _as_float32(v) for k, v in tree.items()}
  return np.ascontiguousarray(tree, np.float32)
