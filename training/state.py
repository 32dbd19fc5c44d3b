"""The sharded train state and the compiled update step for a config on a mesh.

    setup = state.build(config, mesh)
    train_state = setup.init()                       # created already sharded
    train_state, metrics = setup.step(train_state, batch)   # batch: global arrays, setup.batch_sharding

Fine-tuning (config.init_from): `setup.init(source_params)` starts from the source model's weights
(new LoRA adapters and heads freshly initialised) and `setup.bind(source_params)` hands the step
the weights it does not train. With LoRA (model.lora_rank > 0) the state's params are only the
adapters and the scalar head, so optimizer state and checkpoints hold only those.
"""

import dataclasses
import time
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp

from models import partitioning, transformer
from training import mesh as mesh_lib, objectives, optimizer as optimizer_lib, train_step as train_step_lib

BATCH_FIELDS = dict(inputs=jnp.int32, targets=jnp.int32, segment_ids=jnp.int32, positions=jnp.int32,
                    loss_weights=jnp.float32)


def batch_fields(objective="lm"):
  """{name: dtype} of a batch for `config.objective` (each [rows, seq_len])."""
  return dict(BATCH_FIELDS, **{k: jnp.float32 for k in objectives.get(objective).batch_fields})


def is_trained(model_cfg, path):
  """Whether the weight at `path` is trained: all of them, or with LoRA the adapters and the head."""
  return not model_cfg.lora_rank or transformer.is_adapter(path) or "score_head" in str(path)


def partition(model_cfg, tree):
  """A params-shaped nested dict -> (trained part, frozen part), both nested dicts."""
  trained, frozen = {}, {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    node = trained if is_trained(model_cfg, path) else frozen
    keys = [getattr(k, "key", getattr(k, "idx", k)) for k in path]
    for key in keys[:-1]:
      node = node.setdefault(key, {})
    node[keys[-1]] = leaf
  return trained, frozen


def overlay(fresh, source, where="init_from"):
  """`fresh` params with every weight the source model has replaced by the source's (shapes must
  agree); weights only `fresh` has (adapters, heads) keep their initialisation."""
  problems = []

  def walk(node, src, path):
    out = dict(node)
    for key, value in src.items():
      if key not in node:
        problems.append(f"{path}{key}: in the source but not in this model")
      elif isinstance(value, dict):
        out[key] = walk(node[key], value, f"{path}{key}/")
      elif tuple(node[key].shape) != tuple(value.shape):
        problems.append(f"{path}{key}: source shape {tuple(value.shape)}, model {tuple(node[key].shape)}")
      else:
        out[key] = value
    return out
  merged = walk(fresh, source, "")
  if problems:
    raise ValueError(f"{where}: the source weights do not fit config.model: " + "; ".join(problems[:8]))
  return merged


@dataclasses.dataclass
class Setup:
  graphdef: Any
  abstract_state: Any  # ShapeDtypeStructs carrying their target shardings
  param_shardings: Any
  batch_sharding: Any
  init: Callable  # (source params or None) -> the sharded initial state
  bind: Callable  # (source params or None) -> the sharded frozen weights the step reads
  step: Callable  # compiled (state, batch, frozen) -> (state, metrics); donates state
  compile_seconds: float
  batch_fields: dict
  loss_fn: Callable  # (graphdef, params, batch, rng=, reference=) -> sums; the step's loss


def abstract_state(config, mesh):
  """(graphdef, optax transformation, schedule, init_state(full params) -> state, abstract
  state with shardings, shardings of the full params)."""
  rules = tuple(config.logical_axis_rules)
  model_cfg = config.model
  graphdef, _ = transformer.split_model(transformer.abstract_model(model_cfg))
  tx, schedule = optimizer_lib.make_optimizer(config.optimizer, config.total_steps)

  def init_state(full_params):
    params, _ = partition(model_cfg, full_params)
    return dict(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  full = jax.eval_shape(lambda: transformer.init_params(model_cfg, config.seed))
  full_shardings = mesh_lib.tree_shardings(full, transformer.param_axes(model_cfg), rules, mesh)
  abstract = jax.eval_shape(init_state, full)
  param_shardings = partition(model_cfg, full_shardings)[0]
  state_shardings = dict(
      step=mesh_lib.replicated(mesh), params=param_shardings,
      opt_state=mesh_lib.optimizer_shardings(tx, abstract["opt_state"], param_shardings, mesh))
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, state_shardings)
  return graphdef, tx, schedule, init_state, abstract, full_shardings


def reference_config(model_cfg):
  """The frozen reference model of DPO / PPO: the same decoder without adapters or heads."""
  cfg = model_cfg.copy_and_resolve_references()
  cfg.lora_rank, cfg.score_head = 0, False
  return cfg


def reference_model(model_cfg, source_params):
  """(graphdef, params) of the frozen reference: the source model's weights as they were loaded."""
  return transformer.split_model(transformer.abstract_model(reference_config(model_cfg)))[0], source_params


def build(config, mesh, loss_fn=None):
  """Everything the loop needs; `loss_fn` defaults to the loss of `config.objective` (with its
  settings from the config)."""
  objective = objectives.get(config.objective)
  rules = tuple(config.logical_axis_rules)
  model_cfg = config.model
  graphdef, tx, schedule, init_state, abstract, full_shardings = abstract_state(config, mesh)
  state_shardings = jax.tree.map(lambda x: x.sharding, abstract)
  param_shardings = state_shardings["params"]
  full_abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                               jax.eval_shape(lambda: transformer.init_params(model_cfg, config.seed)), full_shardings)

  # What the step reads but does not train: LoRA's base weights; DPO's on-the-fly reference.
  reference_cfg = reference_config(model_cfg)
  reference_graphdef = None
  frozen_abstract = dict(base=partition(model_cfg, full_abstract)[1])
  needs_reference = objective.reference_in_step(config)
  if needs_reference:
    reference_graphdef, _ = transformer.split_model(transformer.abstract_model(reference_cfg))
    ref_abstract = jax.eval_shape(lambda: transformer.init_params(reference_cfg, 0))
    frozen_abstract["reference"] = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), ref_abstract,
        mesh_lib.tree_shardings(ref_abstract, transformer.param_axes(reference_cfg), rules, mesh))
  frozen_shardings = jax.tree.map(lambda x: x.sharding, frozen_abstract)

  batch_shape = (config.batch_size, config.seq_len)
  batch_sharding = partitioning.sharding_for(("batch", "length"), batch_shape, rules, mesh)
  fields = batch_fields(config.objective)
  abstract_batch = {k: jax.ShapeDtypeStruct(batch_shape, dt, sharding=batch_sharding) for k, dt in fields.items()}
  loss_fn = loss_fn or objective.bound_loss(config)
  dropout_seed = config.seed if model_cfg.lora_rank and model_cfg.lora_dropout > 0 else None
  train_step = train_step_lib.make_train_step(
      graphdef, tx, schedule, loss_fn, objective.normaliser, config.grad_accum_steps,
      objective.rows_per_example, dropout_seed, reference_graphdef)
  t0 = time.time()
  with partitioning.activation_sharding(mesh, rules):
    compiled = jax.jit(
        train_step, in_shardings=(state_shardings, batch_sharding, frozen_shardings),
        out_shardings=(state_shardings, mesh_lib.replicated(mesh)), donate_argnums=0,
    ).lower(abstract, abstract_batch, frozen_abstract).compile()

  def full_params(source):
    """Fresh params of this model (seeded), with the source model's weights laid over them."""
    fresh = jax.jit(lambda: transformer.init_params(model_cfg, config.seed), out_shardings=full_shardings)()
    if source is None:
      return fresh
    return jax.device_put(overlay(fresh, source, f"init_from {config.init_from!r}"), full_shardings)

  def init(source=None):
    return jax.jit(init_state, out_shardings=state_shardings)(full_params(source))

  def bind(source=None):
    frozen = dict(base=partition(model_cfg, full_params(source))[1])
    if needs_reference:
      if source is None:
        raise ValueError(f"{config.objective} with the reference in the step needs config.init_from "
                         "(the reference model)")
      frozen["reference"] = jax.device_put(source, frozen_shardings["reference"])
    return frozen

  return Setup(
      graphdef=graphdef, abstract_state=abstract, param_shardings=param_shardings,
      batch_sharding=batch_sharding, init=init, bind=bind, step=compiled,
      compile_seconds=time.time() - t0, batch_fields=fields, loss_fn=loss_fn)


def to_global(batch_sharding, local_batch, fields=None):
  """This process's rows (numpy) -> global jax.Arrays laid out by `batch_sharding`."""
  return {k: jax.make_array_from_process_local_data(batch_sharding, jnp.asarray(local_batch[k], dt))
          for k, dt in (fields or BATCH_FIELDS).items()}
