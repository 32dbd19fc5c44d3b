"""The sharded train state and the compiled update step for a config on a mesh.

    setup = state.build(config, mesh)
    train_state = setup.init()                       # created already sharded
    train_state, metrics = setup.step(train_state, batch)   # batch: global arrays, setup.batch_sharding
"""

import dataclasses
import functools
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from models import partitioning, transformer
from training import mesh as mesh_lib, optimizer as optimizer_lib, steps

BATCH_FIELDS = dict(inputs=jnp.int32, targets=jnp.int32, segment_ids=jnp.int32, positions=jnp.int32,
                    loss_weights=jnp.float32)


@dataclasses.dataclass
class Setup:
  graphdef: Any
  abstract_state: Any  # ShapeDtypeStructs carrying their target shardings
  state_shardings: Any
  param_shardings: Any
  batch_sharding: Any
  init: Callable  # () -> freshly initialised, sharded state
  step: Callable  # compiled (state, batch) -> (state, metrics); donates state
  compile_seconds: float
  schedule: Callable


def abstract_state(config, mesh):
  """(graphdef, optax transformation, schedule, init_state function, abstract state with shardings)."""
  rules = tuple(config.logical_axis_rules)
  model_cfg = config.model
  graphdef, _ = transformer.split_model(transformer.abstract_model(model_cfg))
  tx, schedule = optimizer_lib.make_optimizer(config.optimizer, config.total_steps)

  def init_state():
    params = transformer.init_params(model_cfg, config.seed)
    return dict(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  abstract = jax.eval_shape(init_state)
  param_shardings = mesh_lib.tree_shardings(abstract["params"], transformer.param_axes(model_cfg), rules, mesh)
  state_shardings = dict(
      step=mesh_lib.replicated(mesh), params=param_shardings,
      opt_state=mesh_lib.optimizer_shardings(tx, abstract["opt_state"], param_shardings, mesh))
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, state_shardings)
  return graphdef, tx, schedule, init_state, abstract


def build(config, mesh, loss_fn=None):
  """Everything the loop needs; `loss_fn` defaults to next-token cross-entropy with the model's z-loss."""
  rules = tuple(config.logical_axis_rules)
  model_cfg = config.model
  graphdef, tx, schedule, init_state, abstract = abstract_state(config, mesh)
  state_shardings = jax.tree.map(lambda x: x.sharding, abstract)
  param_shardings = state_shardings["params"]

  batch_shape = (config.batch_size, config.seq_len)
  batch_sharding = partitioning.sharding_for(("batch", "length"), batch_shape, rules, mesh)
  abstract_batch = {k: jax.ShapeDtypeStruct(batch_shape, dt, sharding=batch_sharding) for k, dt in BATCH_FIELDS.items()}
  loss_fn = loss_fn or functools.partial(steps.lm_loss, z_loss=model_cfg.z_loss)
  train_step = steps.make_train_step(graphdef, tx, schedule, loss_fn, config.grad_accum_steps)
  t0 = time.time()
  with partitioning.activation_sharding(mesh, rules):
    compiled = jax.jit(
        train_step, in_shardings=(state_shardings, batch_sharding),
        out_shardings=(state_shardings, mesh_lib.replicated(mesh)), donate_argnums=0,
    ).lower(abstract, abstract_batch).compile()
  return Setup(
      graphdef=graphdef, abstract_state=abstract, state_shardings=state_shardings,
      param_shardings=param_shardings, batch_sharding=batch_sharding,
      init=jax.jit(init_state, out_shardings=state_shardings), step=compiled,
      compile_seconds=time.time() - t0, schedule=schedule)


def to_global(batch_sharding, local_batch):
  """This process's rows (numpy) -> global jax.Arrays laid out by `batch_sharding`."""
  return {k: jax.make_array_from_process_local_data(batch_sharding, jnp.asarray(local_batch[k], dt))
          for k, dt in BATCH_FIELDS.items()}
