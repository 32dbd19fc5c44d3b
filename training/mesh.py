"""The device mesh from `config.mesh`, and shardings for params, optimizer state and batches."""

import jax
import numpy as np
import optax
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from models import partitioning

AXES = ("data", "fsdp", "tensor")


def mesh_shape(mesh_cfg, device_count):
  """{axis: size} with a single -1 filled from the device count; a clear error if it can't divide."""
  sizes = {axis: int(mesh_cfg[axis]) for axis in AXES}
  unknown = [a for a, n in sizes.items() if n == -1]
  fixed = int(np.prod([n for n in sizes.values() if n != -1]))
  if len(unknown) > 1 or any(n == 0 or n < -1 for n in sizes.values()):
    raise ValueError(f"config.mesh {sizes}: sizes must be positive, with at most one -1 (fill)")
  if unknown:
    if device_count % fixed:
      raise ValueError(
          f"config.mesh {sizes}: the fixed axes multiply to {fixed}, which does not divide the "
          f"{device_count} devices; pick sizes whose product divides {device_count}")
    sizes[unknown[0]] = device_count // fixed
  if int(np.prod(list(sizes.values()))) != device_count:
    raise ValueError(
        f"config.mesh {sizes} has {int(np.prod(list(sizes.values())))} devices but this run has "
        f"{device_count}; make the product equal the device count or set one axis to -1")
  return sizes


def make_mesh(mesh_cfg, devices=None):
  """A Mesh with Auto axes ('data', 'fsdp', 'tensor'), laid out for the interconnect when possible."""
  devices = jax.devices() if devices is None else devices
  sizes = mesh_shape(mesh_cfg, len(devices))
  shape = tuple(sizes[a] for a in AXES)
  try:
    grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
  except (ValueError, NotImplementedError, AssertionError):
    grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, AXES, axis_types=(AxisType.Auto,) * len(AXES))


def tree_shardings(abstract, axes, rules, mesh):
  """NamedSharding for every leaf of `abstract` (arrays or ShapeDtypeStructs) from its logical axes.

  `axes` is a pytree prefix of `abstract` holding tuples of logical names (or None: replicated);
  optimizer states that mirror the params reuse the params' axes through `optimizer_axes`.
  """
  return jax.tree.map(
      lambda names, x: partitioning.sharding_for(names, x.shape, rules, mesh), axes, abstract,
      is_leaf=lambda n: n is None or isinstance(n, tuple))


def optimizer_shardings(tx, abstract_opt_state, param_shardings, mesh):
  """Optimizer state leaves that mirror a param (Adam's mu, nu) get its sharding; the rest replicate."""
  return optax.tree_map_params(
      tx, lambda _, sharding: sharding, abstract_opt_state, param_shardings,
      transform_non_params=lambda _: replicated(mesh), is_leaf=lambda x: isinstance(x, NamedSharding))


def memory_report(compiled, abstract_state, planned_devices):
  """What XLA says the compiled step needs per device here, and the state's share at the planned size."""
  state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract_state))
  lines = [f"train state (params + optimizer): {state_bytes / 2**30:.3f} GiB in all, "
           f"{state_bytes / planned_devices / 2**30:.3f} GiB per device if fully sharded over {planned_devices}"]
  analysis = compiled.memory_analysis()
  if analysis is not None:
    total = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
             - analysis.alias_size_in_bytes + analysis.temp_size_in_bytes)
    lines.append(f"compiled step per device on this mesh: {total / 2**30:.3f} GiB "
                 f"(arguments {analysis.argument_size_in_bytes / 2**30:.3f}, "
                 f"temporaries {analysis.temp_size_in_bytes / 2**30:.3f})")
  return "\n".join(lines)


def replicated(mesh):
  return NamedSharding(mesh, PartitionSpec())
