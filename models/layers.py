"""Decoder building blocks: norms, rotary embeddings, attention, SwiGLU MLP, LLaMA and PaLM blocks,
and LoRA adapters beside any projection (`model.lora_rank`, `lora_targets`).

Every weight carries `logical_axes` metadata; see models/partitioning.py for how those become
shardings. Shapes: B batch, T query length, S key length, E embed, N query heads, K kv heads,
H head_dim, F mlp hidden.
"""

import math
import zlib

import jax
import jax.numpy as jnp
from flax import nnx

from models.partitioning import constrain


def param(rngs, shape, names, dtype, std):
  """A normal(0, std) weight tagged with its logical axis names."""
  return nnx.Param(std * jax.random.normal(rngs.params(), shape, dtype), logical_axes=names)


class RMSNorm(nnx.Module):
  """LLaMA's norm: x / rms(x) * scale, computed in float32."""

  def __init__(self, dim, eps, param_dtype):
    self.scale = nnx.Param(jnp.ones((dim,), param_dtype), logical_axes=("act_embed",))
    self.eps = eps

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)


class LayerNorm(nnx.Module):
  """PaLM's norm: mean-centred, scaled, no bias."""

  def __init__(self, dim, eps, param_dtype):
    self.scale = nnx.Param(jnp.ones((dim,), param_dtype), logical_axes=("act_embed",))
    self.eps = eps

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    x32 = x32 - jnp.mean(x32, axis=-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)


def make_norm(cfg):
  norm = {"rms": RMSNorm, "layer": LayerNorm}[cfg.norm]
  return norm(cfg.embed_dim, cfg.norm_eps, jnp.dtype(cfg.param_dtype))


def _lora_specs(spec):
  """The two einsums of a low-rank update beside the weight einsum `spec` ("bte,enh->btnh"):
  down "bte,er->btr" (A: the weight's input axes x rank) and up "btr,rnh->btnh" (B: rank x its
  output axes)."""
  (xs, ws), out = spec.split("->")[0].split(","), spec.split("->")[1]
  ins = "".join(c for c in ws if c in xs)
  outs = "".join(c for c in ws if c in out)
  batch = "".join(c for c in xs if c not in ins)
  return f"{xs},{ins}r->{batch}r", f"{batch}r,r{outs}->{out}", len(ins)


class LoRA(nnx.Module):
  """Hu et al. 2021's low-rank adapter of one weight: y += dropout(x) @ A @ B * alpha / rank.
  A is normal(0, 1/sqrt(fan-in)), B zeros, so a new adapter leaves the model unchanged."""

  def __init__(self, spec, weight_shape, weight_axes, cfg, rngs):
    self.down_spec, self.up_spec, n_in = _lora_specs(spec)
    r, dt = cfg.lora_rank, jnp.dtype(cfg.param_dtype)
    fan_in = math.prod(weight_shape[:n_in])
    self.a = param(rngs, (*weight_shape[:n_in], r), (*weight_axes[:n_in], "lora_rank"), dt, fan_in**-0.5)
    self.b = nnx.Param(jnp.zeros((r, *weight_shape[n_in:]), dt), logical_axes=("lora_rank", *weight_axes[n_in:]))
    self.scale, self.dropout, self.dtype = cfg.lora_alpha / r, cfg.lora_dropout, jnp.dtype(cfg.dtype)

  def __call__(self, x, rng=None):
    if rng is not None and self.dropout > 0:
      keep = jax.random.bernoulli(rng, 1.0 - self.dropout, x.shape)
      x = jnp.where(keep, x / (1.0 - self.dropout), 0).astype(x.dtype)
    h = jnp.einsum(self.down_spec, x, self.a[...].astype(self.dtype))
    return jnp.einsum(self.up_spec, h, self.b[...].astype(self.dtype)) * self.scale


def add_adapters(module, weights, cfg, rngs):
  """A LoRA beside each named weight {name: einsum spec} that cfg.lora_targets lists."""
  for name, spec in weights.items():
    if cfg.lora_rank and name in cfg.lora_targets:
      w = getattr(module, name)
      setattr(module, f"{name}_lora", LoRA(spec, w.shape, w.get_metadata()["logical_axes"], cfg, rngs))


def project(module, name, spec, x, rng=None):
  """x through weight `name` by einsum `spec`, plus its adapter when it has one. rng: dropout
  key of the adapter (None: no dropout, as at evaluation)."""
  y = jnp.einsum(spec, x, getattr(module, name)[...].astype(module.dtype))
  adapter = getattr(module, f"{name}_lora", None)
  if adapter is not None:
    y = y + adapter(x, None if rng is None else jax.random.fold_in(rng, zlib.crc32(name.encode())))
  return y


def rotary(x, positions, theta):
  """Rotate-half RoPE (the Hugging Face LLaMA layout). x: [B, T, heads, H]; positions: [B, T]."""
  half = x.shape[-1] // 2
  freqs = theta ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions.astype(jnp.float32)[..., None, None] * freqs  # [B, T, 1, H/2]
  sin, cos = jnp.sin(angles), jnp.cos(angles)
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def attention_mask(q_segments, q_slots, k_segments, k_slots):
  """[B, 1, T, S]: causal within a row (or cache) and never across packed documents."""
  same_doc = q_segments[:, :, None] == k_segments[:, None, :]
  causal = q_slots[:, :, None] >= k_slots[:, None, :]
  return (same_doc & causal)[:, None]


def einsum_attention(q, k, v, mask):
  """Grouped-query attention by explicit einsums; softmax in float32."""
  b, t, n, h = q.shape
  kv = k.shape[2]
  q = q.reshape(b, t, kv, n // kv, h)
  scores = jnp.einsum("btkgh,bskh->bkgts", q, k).astype(jnp.float32) * h**-0.5
  scores = jnp.where(mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  return jnp.einsum("bkgts,bskh->btkgh", probs, v).reshape(b, t, n, h)


def prefix_attention(q, k, v, mask, prefix_k, prefix_v, prefix_mask):
  """Attention over a shared prefix [P, K, H] (the same for every row, stored once) and each
  row's own keys [B, S, K, H], with one softmax over both: every query sees the whole prefix."""
  b, t, n, h = q.shape
  kv = k.shape[2]
  q = q.reshape(b, t, kv, n // kv, h)
  scores = jnp.concatenate([
      jnp.einsum("btkgh,pkh->bkgtp", q, prefix_k),
      jnp.einsum("btkgh,bskh->bkgts", q, k)], axis=-1).astype(jnp.float32) * h**-0.5
  prefix_mask = jnp.broadcast_to(prefix_mask, (b, 1, t, prefix_mask.shape[0]))
  full_mask = jnp.concatenate([prefix_mask, mask], axis=-1)
  scores = jnp.where(full_mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  p = prefix_k.shape[0]
  out = (jnp.einsum("bkgtp,pkh->btkgh", probs[..., :p], prefix_v) +
         jnp.einsum("bkgts,bskh->btkgh", probs[..., p:], v))
  return out.reshape(b, t, n, h)


def dot_product_attention(q, k, v, mask):
  """jax.nn.dot_product_attention (XLA; cuDNN flash attention is picked by JAX where it applies)."""
  return jax.nn.dot_product_attention(q, k, v, mask=mask)


ATTENTION = {"dot_product": dot_product_attention, "einsum": einsum_attention}


def _write_all(cache, new, index):
  """Every row's new entries [B, T, ...] go to cache slots index .. index + T."""
  return jax.lax.dynamic_update_slice_in_dim(cache, new, index, axis=1)


def _write_rows(cache, new, index):
  """Row b's new entries go to slots index[b] .. index[b] + T (batched agents: rows at different
  lengths). The caller keeps index[b] + T <= slots, since dynamic_update_slice clamps."""
  return jax.vmap(lambda c, x, i: jax.lax.dynamic_update_slice_in_dim(c, x, i, axis=0))(cache, new, index)


class Attention(nnx.Module):
  """Multi-head / grouped-query / multi-query attention with rotary positions and an optional KV cache."""

  def __init__(self, cfg, rngs):
    e, n, k, h = cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    dt, std = jnp.dtype(cfg.param_dtype), e**-0.5
    self.wq = param(rngs, (e, n, h), ("embed", "heads", "head_dim"), dt, std)
    self.wk = param(rngs, (e, k, h), ("embed", "kv_heads", "head_dim"), dt, std)
    self.wv = param(rngs, (e, k, h), ("embed", "kv_heads", "head_dim"), dt, std)
    out_std = (n * h) ** -0.5 / (2 * cfg.num_layers) ** 0.5
    self.wo = param(rngs, (n, h, e), ("heads", "head_dim", "embed"), dt, out_std)
    self.theta, self.dtype = cfg.rope_theta, jnp.dtype(cfg.dtype)
    self.attend = ATTENTION[cfg.attention]
    add_adapters(self, self.SPECS, cfg, rngs)

  SPECS = dict(wq="bte,enh->btnh", wk="bte,ekh->btkh", wv="bte,ekh->btkh", wo="btnh,nhe->bte")

  def __call__(self, x, positions, segment_ids, cache=None, cache_index=None, rng=None):
    """x: [B, T, E]. cache: None or dict(k, v: [B, S, K, H], segment_ids: [B, S]).

    With a cache, the new keys/values are written at slots cache_index .. cache_index + T (a
    scalar, or [B] for rows at different lengths) and the
    queries attend to every filled slot of their own segment. Returns ([B, T, E], new cache).
    """
    dt, specs = self.dtype, self.SPECS
    q, k, v = (project(self, name, specs[name], x, rng) for name in ("wq", "wk", "wv"))
    q = constrain(rotary(q, positions, self.theta), ("batch", "length", "heads", "head_dim"))
    k = constrain(rotary(k, positions, self.theta), ("batch", "length", "kv_heads", "head_dim"))
    v = constrain(v, ("batch", "length", "kv_heads", "head_dim"))
    slots = jnp.broadcast_to(jnp.arange(x.shape[1]), segment_ids.shape)
    k_segments, k_slots = segment_ids, slots
    if cache is not None:
      write = _write_rows if jnp.ndim(cache_index) else _write_all
      k = write(cache["k"], k.astype(cache["k"].dtype), cache_index)
      v = write(cache["v"], v.astype(cache["v"].dtype), cache_index)
      k_segments = write(cache["segment_ids"], segment_ids, cache_index)
      prefix = {name: cache[name] for name in ("prefix_k", "prefix_v", "prefix_segments") if name in cache}
      cache = dict(k=k, v=v, segment_ids=k_segments)
      k_slots = jnp.broadcast_to(jnp.arange(k.shape[1]), k_segments.shape)
      slots = slots + (cache_index[:, None] if jnp.ndim(cache_index) else cache_index)
    mask = attention_mask(segment_ids, slots, k_segments, k_slots)
    if cache is not None and prefix:  # a shared prefix stored once: see models/engine.py
      out = prefix_attention(q, k.astype(dt), v.astype(dt), mask, prefix["prefix_k"].astype(dt),
                             prefix["prefix_v"].astype(dt), prefix["prefix_segments"] > 0)
    else:
      out = self.attend(q, k.astype(dt), v.astype(dt), mask)
    out = constrain(out, ("batch", "length", "heads", "head_dim"))
    return project(self, "wo", specs["wo"], out, rng), cache


class MLP(nnx.Module):
  """SwiGLU: down(silu(x @ gate) * (x @ up))."""

  def __init__(self, cfg, rngs):
    e, f, dt = cfg.embed_dim, cfg.mlp_dim, jnp.dtype(cfg.param_dtype)
    self.gate = param(rngs, (e, f), ("embed", "mlp"), dt, e**-0.5)
    self.up = param(rngs, (e, f), ("embed", "mlp"), dt, e**-0.5)
    self.down = param(rngs, (f, e), ("mlp", "embed"), dt, f**-0.5 / (2 * cfg.num_layers) ** 0.5)
    self.dtype = jnp.dtype(cfg.dtype)
    add_adapters(self, self.SPECS, cfg, rngs)

  SPECS = dict(gate="bte,ef->btf", up="bte,ef->btf", down="btf,fe->bte")

  def __call__(self, x, rng=None):
    gate = project(self, "gate", self.SPECS["gate"], x, rng)
    hidden = jax.nn.silu(gate) * project(self, "up", self.SPECS["up"], x, rng)
    hidden = constrain(hidden, ("batch", "length", "mlp"))
    return project(self, "down", self.SPECS["down"], hidden, rng)


class LlamaBlock(nnx.Module):
  """Sequential pre-norm block: x + attn(norm(x)), then + mlp(norm(.))."""

  def __init__(self, cfg, rngs):
    self.attn_norm, self.mlp_norm = make_norm(cfg), make_norm(cfg)
    self.attn, self.mlp = Attention(cfg, rngs), MLP(cfg, rngs)

  def __call__(self, x, positions, segment_ids, cache=None, cache_index=None, rng=None):
    h, cache = self.attn(self.attn_norm(x), positions, segment_ids, cache, cache_index, rng)
    x = constrain(x + h, ("batch", "length", "act_embed"))
    x = x + self.mlp(self.mlp_norm(x), rng)
    return constrain(x, ("batch", "length", "act_embed")), cache


class PalmBlock(nnx.Module):
  """PaLM's parallel block: x + attn(norm(x)) + mlp(norm(x)) with one shared norm."""

  def __init__(self, cfg, rngs):
    self.norm = make_norm(cfg)
    self.attn, self.mlp = Attention(cfg, rngs), MLP(cfg, rngs)

  def __call__(self, x, positions, segment_ids, cache=None, cache_index=None, rng=None):
    y = self.norm(x)
    h, cache = self.attn(y, positions, segment_ids, cache, cache_index, rng)
    return constrain(x + h + self.mlp(y, rng), ("batch", "length", "act_embed")), cache


BLOCKS = {"llama": LlamaBlock, "palm": PalmBlock}
