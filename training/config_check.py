"""Validate a training config before anything is compiled: one clear paragraph per problem.

The fields every run has are checked here; each objective checks its own (training/objectives/),
and the benchmark specs of config.evals are checked by eval/suite.py.
"""

from input_pipeline import sft
from models.config import LORA_TARGETS
from models.layers import ATTENTION, BLOCKS
from models.transformer import REMAT_POLICIES
from training import objectives
from training.config import ConfigError, need as _need
from training.mesh import mesh_shape

__all__ = ["ConfigError", "check"]

DTYPES = ("float32", "bfloat16", "float16")


def check(config, device_count, process_count=1):
  """Raises ConfigError naming the field, its value and what was expected."""
  m = config.model
  for field in ("vocab_size", "num_layers", "embed_dim", "num_heads", "num_kv_heads", "head_dim", "mlp_dim"):
    _need(isinstance(m[field], int) and m[field] > 0, f"model.{field}", m[field], "a positive integer")
  _need(m.block in BLOCKS, "model.block", m.block, f"one of {sorted(BLOCKS)}")
  _need(m.norm in ("rms", "layer"), "model.norm", m.norm, "'rms' or 'layer'")
  _need(m.attention in ATTENTION, "model.attention", m.attention, f"one of {sorted(ATTENTION)}")
  _need(m.remat in ("none", *REMAT_POLICIES), "model.remat", m.remat, f"one of {['none', *REMAT_POLICIES]}")
  _need(m.param_dtype in DTYPES, "model.param_dtype", m.param_dtype, f"one of {DTYPES}")
  _need(m.dtype in DTYPES, "model.dtype", m.dtype, f"one of {DTYPES}")
  _need(m.num_heads % m.num_kv_heads == 0, "model.num_kv_heads", m.num_kv_heads,
        f"a divisor of model.num_heads = {m.num_heads} (grouped-query attention)")
  _need(m.head_dim % 2 == 0, "model.head_dim", m.head_dim, "an even number (rotary embeddings rotate pairs)")
  _need(m.z_loss >= 0, "model.z_loss", m.z_loss, "a weight >= 0")

  for field in ("total_steps", "batch_size", "seq_len", "grad_accum_steps", "log_every"):
    _need(isinstance(config[field], int) and config[field] > 0, field, config[field], "a positive integer")
  evals = config.get("evals")
  if evals is not None and evals.tasks:
    _need(config.eval_every > 0, "eval_every", config.eval_every, "> 0 when evals.tasks is set")
  for field in ("eval_every", "checkpoint_every", "eval_batches"):
    _need(isinstance(config[field], int) and config[field] >= 0, field, config[field], "an integer >= 0 (0 disables)")
  _need(config.keep_checkpoints >= 1, "keep_checkpoints", config.keep_checkpoints, "at least 1")
  _need(config.batch_size % config.grad_accum_steps == 0, "grad_accum_steps", config.grad_accum_steps,
        f"a divisor of batch_size = {config.batch_size}")
  _need(config.batch_size % process_count == 0, "batch_size", config.batch_size,
        f"a multiple of the process count {process_count} (each process loads its share of rows)")
  o = config.optimizer
  _need(o.learning_rate > 0, "optimizer.learning_rate", o.learning_rate, "> 0")
  _need(0 <= o.warmup_steps <= config.total_steps, "optimizer.warmup_steps", o.warmup_steps,
        f"between 0 and total_steps = {config.total_steps}")
  _need(0 <= o.min_lr_ratio <= 1, "optimizer.min_lr_ratio", o.min_lr_ratio, "a fraction in [0, 1]")

  d = config.data
  paths = (d.path,) if isinstance(d.path, str) else tuple(d.path)
  _need(bool(d.name) != bool(any(paths)), "data.path", d.path,
        f"exactly one of data.path (files) or data.name (TFDS; now {d.name!r}) to be set")
  _need(0 <= d.eval_fraction < 1, "data.eval_fraction", d.eval_fraction, "a fraction in [0, 1)")

  _check_finetune(config, process_count)

  try:
    sizes = mesh_shape(config.mesh, device_count)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  batch_shards = sizes["data"] * sizes["fsdp"]
  micro = config.batch_size // config.grad_accum_steps
  _need(micro % batch_shards == 0, "batch_size", config.batch_size,
        f"batch_size / grad_accum_steps = {micro} to divide by mesh data x fsdp = {batch_shards} "
        f"(mesh {sizes}); the batch is split across those devices")
  return sizes


def _check_finetune(config, process_count):
  """The fine-tuning fields every objective shares (objective, lora, finetune), then the objective's own."""
  m, ft = config.model, config.finetune
  _need(config.objective in objectives.REGISTRY, "objective", config.objective, f"one of {sorted(objectives.REGISTRY)}")
  objective = objectives.get(config.objective)
  _need(isinstance(m.lora_rank, int) and m.lora_rank >= 0, "model.lora_rank", m.lora_rank, "an integer >= 0")
  if m.lora_rank:
    _need(bool(config.init_from), "model.lora_rank", m.lora_rank,
          "0 unless init_from names the pretrained model the adapters adapt")
    _need(set(m.lora_targets) <= set(LORA_TARGETS), "model.lora_targets", m.lora_targets,
          f"a subset of {LORA_TARGETS}")
    _need(bool(m.lora_targets) or m.score_head, "model.lora_targets", m.lora_targets,
          "a non-empty subset (empty trains nothing unless model.score_head is on: a linear probe)")
    _need(0 <= m.lora_dropout < 1, "model.lora_dropout", m.lora_dropout, "a rate in [0, 1)")
  if objective.finetuning(config):
    _need(ft.template in sft.TEMPLATES, "finetune.template", ft.template, f"one of {sft.TEMPLATES}")
    _need(0 <= ft.held_out_fraction < 1, "finetune.held_out_fraction", ft.held_out_fraction, "a fraction in [0, 1)")
  objective.check(config, process_count)
