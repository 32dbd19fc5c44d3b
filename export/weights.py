"""Our params -> the plain numpy tensors every exporter writes, and what each format can hold.

The exporters start from `training.model_source.load(source)` (a workdir with LoRA already merged, a
Hugging Face directory, a GGUF file or a packaged model) and read weights only through this
module, so the layout conversions live in one place:
  * `layer(cfg, params, i)`: layer i's weights in our layout (scanned or unrolled layers alike);
  * `torch_tensors(cfg, params)`: Hugging Face LLaMA tensor names and [out, in] matrices, the
    exact inverse of `models.llama_import.params_from_torch_layout`;
  * `check(cfg, fmt)`: refuses, naming the config field, a model a format cannot hold.
"""

import numpy as np

# What Hugging Face's LlamaForCausalLM and llama.cpp's "llama" architecture cannot express.
_LLAMA_ONLY = (("block", "llama", "the parallel attention+MLP block (PaLM)"),
               ("norm", "rms", "LayerNorm (PaLM)"))


class UnsupportedModel(ValueError):
  """The model has a feature the requested format cannot hold."""


def check(cfg, fmt):
  """Raise UnsupportedModel when `fmt` (hf | gguf | onnx) cannot hold the model `cfg`."""
  if cfg.get("lora_rank", 0):
    raise UnsupportedModel(f"{fmt}: model.lora_rank={cfg.lora_rank}: merge the adapters first "
                           "(training.model_source.load does this for LoRA workdirs)")
  if cfg.get("score_head", False):
    raise UnsupportedModel(f"{fmt}: model.score_head=True (a reward/value model) has no place in a "
                           "causal-LM export; export the policy model instead")
  if fmt in ("hf", "gguf"):
    for field, allowed, what in _LLAMA_ONLY:
      if cfg[field] != allowed:
        raise UnsupportedModel(
            f"{fmt}: model.{field}={cfg[field]!r} ({what}) cannot be written in the LLaMA "
            f"architecture, which needs model.{field}={allowed!r}; ONNX export supports it")


def array(x):
  return np.asarray(x, np.float32)


def layer(cfg, params, i):
  """Layer i's params (nested dict of float32 numpy arrays) in our layout."""
  if cfg.scan_layers:
    pick = lambda node: {k: pick(v) for k, v in node.items()} if isinstance(node, dict) else array(node[i])
    return pick(params["layers"])
  layers = params["layers"]
  node = layers[i] if i in layers else layers[str(i)]
  as_np = lambda n: {k: as_np(v) for k, v in n.items()} if isinstance(n, dict) else array(n)
  return as_np(node)


def output_head(cfg, params):
  """[E, V] output projection (the embedding transposed when tied)."""
  return array(params["embedding"]).T if cfg.tie_embeddings else array(params["lm_head"])


def torch_tensors(cfg, params):
  """{Hugging Face LLaMA tensor name: float32 array [out, in]} (no lm_head when tied)."""
  e, n, k, h = cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
  out = {"model.embed_tokens.weight": array(params["embedding"]),
         "model.norm.weight": array(params["final_norm"]["scale"])}
  for i in range(cfg.num_layers):
    p, w = f"model.layers.{i}.", layer(cfg, params, i)
    out.update({
        p + "self_attn.q_proj.weight": w["attn"]["wq"].reshape(e, n * h).T,
        p + "self_attn.k_proj.weight": w["attn"]["wk"].reshape(e, k * h).T,
        p + "self_attn.v_proj.weight": w["attn"]["wv"].reshape(e, k * h).T,
        p + "self_attn.o_proj.weight": w["attn"]["wo"].reshape(n * h, e).T,
        p + "mlp.gate_proj.weight": w["mlp"]["gate"].T,
        p + "mlp.up_proj.weight": w["mlp"]["up"].T,
        p + "mlp.down_proj.weight": w["mlp"]["down"].T,
        p + "input_layernorm.weight": w["attn_norm"]["scale"],
        p + "post_attention_layernorm.weight": w["mlp_norm"]["scale"],
    })
  if not cfg.tie_embeddings:
    out["lm_head.weight"] = array(params["lm_head"]).T
  return {name: np.ascontiguousarray(t) for name, t in out.items()}
