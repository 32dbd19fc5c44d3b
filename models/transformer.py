"""The decoder-only transformer (LLaMA and PaLM variants) and helpers to build it without memory.

Training calls it functionally: `graphdef, params = nnx.split(model)` once, then
`nnx.merge(graphdef, params)(tokens, ...)` inside the jitted step, so params are a plain pytree
that optax, jit shardings and Orbax handle directly.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.layers import BLOCKS, make_norm, param
from models.partitioning import constrain

REMAT_POLICIES = {
    "full": None,  # recompute everything inside the block in the backward pass
    # keep the outputs of weight matmuls (no batch dims); recompute norms, softmax and attention
    "save_dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Decoder(nnx.Module):
  """tokens [B, T] -> logits [B, T, vocab] (float32)."""

  def __init__(self, cfg, rngs):
    self.cfg = cfg
    dt = jnp.dtype(cfg.param_dtype)
    self.embedding = param(rngs, (cfg.vocab_size, cfg.embed_dim), ("vocab", "embed"), dt, cfg.init_std)
    if not cfg.tie_embeddings:
      self.lm_head = param(rngs, (cfg.embed_dim, cfg.vocab_size), ("embed", "vocab"), dt, cfg.embed_dim**-0.5)
    block = BLOCKS[cfg.block]
    if cfg.scan_layers:
      # One block with a leading `layers` axis on every weight, applied with lax.scan.
      @nnx.split_rngs(splits=cfg.num_layers)
      @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: None, "logical_axes": "layers"})
      def make_layers(rngs):
        return block(cfg, rngs)

      self.layers = make_layers(rngs)
    else:
      self.layers = nnx.List([block(cfg, rngs) for _ in range(cfg.num_layers)])
    self.final_norm = make_norm(cfg)
    if cfg.score_head:  # a scalar per position: the reward model's score, PPO's value
      self.score_head = nnx.Param(jnp.zeros((cfg.embed_dim,), dt), logical_axes=("embed",))

  def __call__(self, tokens, positions=None, segment_ids=None, cache=None, cache_index=None, rng=None):
    """tokens, positions, segment_ids: [B, T] int32. cache: see `init_cache`. rng: dropout key
    (LoRA adapters), None at evaluation. Returns (logits [B, T, vocab], cache)."""
    x, cache = self.features(tokens, positions, segment_ids, cache, cache_index, rng)
    return self.logits(x), cache

  def logits(self, x):
    """Final hidden states [B, T, E] -> float32 logits [B, T, vocab]."""
    cfg = self.cfg
    head = self.embedding[...].T if cfg.tie_embeddings else self.lm_head[...]
    logits = jnp.dot(x, head.astype(cfg.dtype), preferred_element_type=jnp.float32)
    return constrain(logits, ("batch", "length", "vocab"))

  def scores(self, x):
    """Final hidden states [B, T, E] -> float32 scalar head outputs [B, T]."""
    return jnp.dot(x.astype(jnp.float32), self.score_head[...].astype(jnp.float32))

  def features(self, tokens, positions=None, segment_ids=None, cache=None, cache_index=None, rng=None):
    """The final-normed hidden states [B, T, E] (what both heads read) and the cache."""
    cfg = self.cfg
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
    if segment_ids is None:
      segment_ids = jnp.ones_like(tokens)
    x = jnp.take(self.embedding[...], tokens, axis=0).astype(cfg.dtype)
    x = constrain(x, ("batch", "length", "act_embed"))
    x, cache = self._layers(x, positions, segment_ids, cache, cache_index, rng)
    return self.final_norm(x), cache

  def _layers(self, x, positions, segment_ids, cache, cache_index, rng):
    cfg = self.cfg
    layer_rngs = None if rng is None else jax.random.split(rng, cfg.num_layers)

    def apply(graphdef, x, layer_params, layer_cache, layer_rng):
      block = nnx.merge(graphdef, layer_params)
      return block(x, positions, segment_ids, layer_cache, cache_index, layer_rng)

    if cfg.remat != "none":
      apply = jax.checkpoint(apply, policy=REMAT_POLICIES[cfg.remat], static_argnums=(0,))

    if cfg.scan_layers:
      graphdef, stacked = nnx.split(self.layers)
      body = lambda x, xs: apply(graphdef, x, *xs)
      return jax.lax.scan(body, x, (stacked, cache, layer_rngs))
    new_caches = []
    for i, block in enumerate(self.layers):
      graphdef, layer_params = nnx.split(block)
      layer_cache = None if cache is None else jax.tree.map(lambda c: c[i], cache)  # noqa: B023
      x, layer_cache = apply(graphdef, x, layer_params, layer_cache, None if rng is None else layer_rngs[i])
      new_caches.append(layer_cache)
    if cache is None:
      return x, None
    return x, jax.tree.map(lambda *c: jnp.stack(c), *new_caches)


def init_cache(cfg, batch_size, max_length, dtype=None):
  """Empty KV cache: k, v [layers, B, max_length, kv_heads, head_dim]; segment_ids [layers, B, max_length].

  Slot segment 0 marks an unfilled slot, so queries (segment >= 1) never attend to it.
  """
  dtype = jnp.dtype(dtype or cfg.dtype)
  shape = (cfg.num_layers, batch_size, max_length, cfg.num_kv_heads, cfg.head_dim)
  return dict(
      k=jnp.zeros(shape, dtype),
      v=jnp.zeros(shape, dtype),
      segment_ids=jnp.zeros(shape[:3], jnp.int32),
  )


def abstract_model(cfg):
  """The model with jax.ShapeDtypeStruct leaves: no memory, no FLOPs."""
  return nnx.eval_shape(lambda: Decoder(cfg, nnx.Rngs(0)))


def split_model(model):
  """(graphdef, params as a plain nested dict): the form jit, optax and Orbax see."""
  graphdef, state = nnx.split(model)
  return graphdef, nnx.to_pure_dict(state)


def init_params(cfg, seed):
  """Freshly initialised params (nested dict); jit this with out_shardings to create them sharded."""
  return split_model(Decoder(cfg, nnx.Rngs(seed)))[1]


def param_axes(cfg):
  """Nested dict, like the params, of each weight's logical axis names (a tuple per weight)."""
  _, state = nnx.split(abstract_model(cfg))
  axes = {}
  for path, variable in state.flat_state():
    node = axes
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = tuple(variable.get_metadata()["logical_axes"])
  return axes


def is_adapter(path):
  """A LoRA weight (a, b of a `<weight>_lora`), by its path of keys in the params dict."""
  return any(str(getattr(k, "key", k)).endswith("_lora") for k in path)


def merge_lora(cfg, params):
  """(cfg without adapters, params with each adapter's alpha / rank * A @ B added to its weight):
  the same function as the adapted model in the base model's shape, for eval and export."""
  scale = cfg.lora_alpha / max(cfg.lora_rank, 1)
  product = lambda a, b: jnp.tensordot(a, b, axes=1)  # [*in, r] x [r, *out] -> the weight's shape
  if cfg.scan_layers:
    product = jax.vmap(product)  # a leading layers axis on both

  def fold(node):
    if not isinstance(node, dict):
      return node
    out = {}
    for key, value in node.items():
      adapter = node.get(f"{key}_lora") if isinstance(key, str) else None
      if adapter is not None:
        value = value + (scale * product(adapter["a"], adapter["b"])).astype(value.dtype)
      if not (isinstance(key, str) and key.endswith("_lora")):
        out[key] = fold(value)
    return out

  merged_cfg = cfg.copy_and_resolve_references()
  merged_cfg.lora_rank = 0
  return merged_cfg, fold(params)


def count_params(cfg):
  """(total, matmul) parameter counts. matmul excludes the input embedding lookup unless it is tied
  (then it is the output projection) and norm scales; it is the N of the PaLM FLOPs formula."""
  _, params = split_model(abstract_model(cfg))
  sizes = {jax.tree_util.keystr(path): int(np.prod(x.shape)) for path, x in jax.tree_util.tree_leaves_with_path(params)}
  total = sum(sizes.values())
  norms = sum(n for k, n in sizes.items() if "norm" in k)
  lookup = 0 if cfg.tie_embeddings else cfg.vocab_size * cfg.embed_dim
  return total, total - norms - lookup
