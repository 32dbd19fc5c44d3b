"""Logical axis names -> mesh shardings.

Modules name every weight and activation axis logically (`embed`, `mlp`, `heads`, `batch`, ...);
the config's `logical_axis_rules` map those names to mesh axes. A mesh axis that does not divide
the dimension it would shard is dropped for that array (it stays replicated along that axis), so a
multi-query `kv_heads` of 1 or a small preset on a wide tensor axis still compiles.
"""

import contextlib
import threading

import jax
from jax.sharding import NamedSharding, PartitionSpec

_CONTEXT = threading.local()

# Logical axis name -> mesh axes. Changing the parallelism is editing this table (a config's
# `logical_axis_rules`) or `mesh`.
# A mesh axis that does not divide a dimension is dropped for that array (it is replicated).
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),  # activations and inputs: data parallel over data x fsdp
    ("length", None),
    ("embed", "fsdp"),  # parameters: ZeRO-3 style sharding of the model dim
    ("act_embed", None),  # the model dim of activations stays whole
    ("mlp", "tensor"),  # Megatron column/row split of the MLP
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("vocab", "tensor"),
    ("layers", None),  # the scanned layer axis
    ("lora_rank", None),  # adapters are small: their rank axis is never split
)


def spec_for(names, shape, rules, mesh_shape):
  """PartitionSpec for an array of `shape` whose axes are called `names`.

  rules: sequence of (logical name, mesh axis | tuple of mesh axes | None); the first rule for a
  name wins. mesh_shape: {mesh axis: size}. Each mesh axis is used at most once per array.
  """
  if names is None:
    return PartitionSpec()
  if len(names) != len(shape):
    raise ValueError(f"logical axes {names} do not match array shape {shape}")
  table = {}
  for name, axes in rules:
    table.setdefault(name, axes)
  used, spec = set(), []
  for name, dim in zip(names, shape):
    axes = table.get(name)
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    kept, size = [], 1
    for axis in axes:
      n = mesh_shape.get(axis, 1)
      if axis in used or n == 1 or dim % (size * n):
        continue
      kept.append(axis)
      size *= n
    used.update(kept)
    spec.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
  return PartitionSpec(*spec)


def sharding_for(names, shape, rules, mesh):
  return NamedSharding(mesh, spec_for(names, shape, rules, dict(mesh.shape)))


@contextlib.contextmanager
def activation_sharding(mesh, rules):
  """Within this context `constrain` pins activations to `mesh` through `rules`."""
  previous = getattr(_CONTEXT, "value", None)
  _CONTEXT.value = (mesh, tuple(rules))
  try:
    yield
  finally:
    _CONTEXT.value = previous


def constrain(x, names):
  """Sharding constraint on an activation by logical names; a no-op outside `activation_sharding`."""
  value = getattr(_CONTEXT, "value", None)
  if value is None:
    return x
  mesh, rules = value
  return jax.lax.with_sharding_constraint(x, sharding_for(names, x.shape, rules, mesh))
