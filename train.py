r"""Pretrain or fine-tune a decoder: the same code on a laptop CPU, one GPU, a GPU cluster or a TPU pod.

  python train.py --config=configs/llama.py:tiny --workdir=runs/tiny [--config.total_steps=2000]
  python train.py --config=configs/llama.py:7b --workdir=runs/plan7b --dry_run
  python train.py --config=configs/sft.py:smollm2_fireact --workdir=runs/sft   (also reward.py, dpo.py, ppo.py)

Only the objective changes between stages (`config.objective`: lm, reward, dpo, ppo; each is one
module of training/objectives/ owning its loss, data, checks and metrics); fine-tuning starts from
`config.init_from` and reads `config.finetune`'s files. Re-running the same command resumes from
the newest checkpoint in the workdir.
"""

import functools
import os
import re
import signal
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from eval import suite
from eval.during_training import Evaluator
from input_pipeline import sft, tokenizer as tokenizer_lib
from models import partitioning, transformer
from models.config import finetune_model_config
from models.decode import Sampler
from training import checkpoint, config as config_lib, config_check, cost, distributed, loop
from training import mesh as mesh_lib, metrics as metrics_lib, model_source, objectives, run_info
from training import state as train_state, train_step

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, path[:arg].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and the tokenizer go.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Compile the step, print sizes and the cost plan, then exit.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "host:port of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Processes in the job (multi-host).")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index (multi-host).")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
  """absl's flag parsing, except that `--config.a.b=v` naming no config field fails in one line
  naming it (ml_collections raises a KeyError naming only `b`)."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError):
    spec = next((a.split("=", 1)[1] for a in argv if re.match(r"--?config=", a)), None)
    config = config_lib.load_config(spec) if spec else None
    for arg in argv[1:]:
      override = re.match(r"--?config\.([^=]+)", arg)
      problem = override and config is not None and config_lib.unknown_field(config, override.group(1))
      if problem:
        sys.exit(f"FATAL Flags parsing error: --config.{override.group(1)}: {problem}.")
    raise


def main(argv):
  del argv
  config, workdir = _CONFIG.value, _WORKDIR.value
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax and JAX log every save at INFO; --verbosity=0 shows it

  # ---------------------------------------------------------------- cluster
  # Importing jax is fine before this; touching devices is not (distributed.py).
  process_index, process_count = distributed.initialize(
      _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  is_primary = process_index == 0

  # ---------------------------------------------------------------- source model (fine-tuning)
  source_params = tokenizer = None
  if config.init_from:
    source_config, _, source_params, tokenizer = model_source.load(config.init_from)
    with config.unlocked():
      config.model = finetune_model_config(source_config.model, config.model)
      if os.path.exists(config.init_from):  # a path: absolute, so the workdir reloads from anywhere
        config.init_from = os.path.abspath(config.init_from)
    print(f"fine-tuning from {config.init_from} ({config.objective}; "
          f"{'LoRA rank ' + str(config.model.lora_rank) if config.model.lora_rank else 'all weights'})")
  mesh_sizes = config_check.check(config, jax.device_count(), process_count)
  suite.check_specs(config.evals.tasks)
  objective = objectives.get(config.objective)
  os.makedirs(workdir, exist_ok=True)
  if is_primary:
    run_info.write(workdir, config, sys.argv, process_count)
  logging.info("%d processes, %d devices (%s), mesh %s", process_count, jax.device_count(),
               jax.devices()[0].device_kind, mesh_sizes)

  # ---------------------------------------------------------------- mesh
  mesh = mesh_lib.make_mesh(config.mesh)
  rules = tuple(config.logical_axis_rules)
  model_cfg = config.model

  # ---------------------------------------------------------------- input
  if not _DRY_RUN.value:
    # Before anything compiles, so a bad data path or tokenizer fails in seconds.
    if tokenizer is None:
      tokenizer = tokenizer_lib.get_tokenizer(config.data, vocab_size=model_cfg.vocab_size, workdir=workdir)
    elif is_primary:
      tokenizer_lib.save_to_workdir(tokenizer, workdir)
    data = objective.load_data(config, tokenizer)
    if data is not None:
      print(data.summary())

  # ---------------------------------------------------------------- model, optimizer, update step
  device_kind = config.cost.device_kind or jax.devices()[0].device_kind
  device_count = config.cost.device_count or jax.device_count()
  global_batch_size = config.batch_size
  if _DRY_RUN.value and device_count > jax.device_count():
    # Planning a bigger cluster here: compile this mesh's share of the planned batch, so XLA's
    # activation memory is what one planned device would hold.
    with config.unlocked():
      n = jax.device_count()
      config.batch_size = max(config.batch_size * n // device_count // n * n, n)
    print(f"dry run: compiling {config.batch_size} of the {global_batch_size} sequences (this mesh's share "
          f"on {device_count} devices)")
  num_params, num_matmul_params = transformer.count_params(model_cfg)
  setup = train_state.build(config, mesh)
  to_global = functools.partial(train_state.to_global, setup.batch_sharding, fields=setup.batch_fields)

  tokens_per_step = global_batch_size * config.seq_len
  flops_per_token = cost.flops_per_token(num_matmul_params, model_cfg.num_layers, model_cfg.num_heads,
                                         model_cfg.head_dim, config.seq_len)
  flops_per_step = flops_per_token * tokens_per_step
  peak = cost.peak_flops(device_kind, model_cfg.dtype)
  if is_primary:
    memory = mesh_lib.memory_report(setup.step, setup.abstract_state, device_count)
    print(f"params: {num_params:,} ({num_matmul_params:,} in matmuls)\n"
          f"FLOPs per step: {flops_per_step:.4g} ({flops_per_token:.4g} per token, PaLM appendix B)\n"
          f"step compiled in {setup.compile_seconds:.1f}s for mesh {mesh_sizes}\n{memory}")
    if peak is None:
      print(f"peak FLOP/s unknown for {device_kind!r}: MFU is not reported")
  if _DRY_RUN.value:
    if is_primary:
      plan = cost.plan_cost(flops_per_step * config.total_steps, device_kind, device_count,
                            assumed_mfu=0.4, cost_cfg=config.cost, dtype=model_cfg.dtype)
      print(cost.format_cost_report(plan))
      cost.save_cost_report(workdir, plan, name="cost_plan.json")
    return

  # ---------------------------------------------------------------- frozen models, the objective's batches
  frozen = setup.bind(source_params)  # LoRA's base weights; DPO's on-the-fly reference
  full_params = lambda state: train_step.combine(frozen["base"], state["params"])
  run = objectives.Run(
      config=config, tokenizer=tokenizer, process_index=process_index, process_count=process_count,
      mesh=mesh, graphdef=setup.graphdef, to_global=to_global,
      reference=train_state.reference_model(model_cfg, source_params) if objective.needs_reference else None,
      reward_model=(model_source.load_reward_model(config.reward_model, tokenizer, mesh)
                    if objective.judged and config.reward_model else None))
  train_iter = objective.train_iterator(data, run)
  eval_batches = objective.eval_batches(data, run) if config.eval_every else []

  # ---------------------------------------------------------------- checkpoint: restore or init
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints,
                                 async_save=config.async_checkpointing)
  start_step = ckpt.latest_step()
  if start_step is not None:
    state = ckpt.restore(start_step, setup.abstract_state, train_iter)
    print(f"resumed from the checkpoint at step {start_step}")
  else:
    start_step = 0
    state = setup.init(source_params)

  # ---------------------------------------------------------------- evals and logging
  clock = loop.Clock(start_step)  # tokens/s and MFU leave out evaluation and checkpoint time
  evaluator = Evaluator(config, workdir, objective, run, setup.loss_fn, eval_batches,
                        data.held_out_prompts if data is not None else [],
                        jnp.asarray(tokenizer.token_byte_lengths(), jnp.float32), clock)
  writer = metrics_lib.MetricsLogger(workdir, config.total_steps, start_step, is_primary)
  log = loop.StepLogger(config, workdir, writer, ckpt, clock, tokens_per_step, flops_per_token, peak,
                        start_step, rollout_stats=lambda: getattr(train_iter, "stats", {}))
  stop = dict(signal=None)
  signal.signal(signal.SIGTERM, lambda signum, _: stop.update(signal=signum))

  # ---------------------------------------------------------------- train loop
  step, pending = start_step, None
  while step < config.total_steps:
    if objective.on_policy:
      train_iter.set_policy(full_params(state))  # the next rollout samples the current policy
    batch = to_global(next(train_iter))
    with partitioning.activation_sharding(mesh, rules), jax.transfer_guard("disallow"):
      state, metrics = setup.step(state, batch, frozen)
    step += 1
    if pending:
      log(*pending)  # one step late: the device runs ahead of the host
    evaluate_now = evaluator.has_work and bool(config.eval_every) and (
        step % config.eval_every == 0 or step == config.total_steps)
    checkpoint_now = (config.checkpoint_every and step % config.checkpoint_every == 0) or step == config.total_steps
    pending = (step, metrics)
    if evaluate_now or checkpoint_now or stop["signal"]:
      evaluate = functools.partial(evaluator, full_params(state), step) if evaluate_now else None
      log(step, metrics, evaluate)  # evaluates the params of exactly this step
      pending = None
    if checkpoint_now or stop["signal"]:
      with clock.paused():
        ckpt.save(step, state, train_iter, force=True)
    if stop["signal"]:
      logging.warning("signal %d: checkpoint at step %d saved, exiting", stop["signal"], step)
      ckpt.wait()
      ckpt.close()
      writer.close()
      sys.exit(128 + stop["signal"])
  ckpt.wait()
  ckpt.close()
  writer.close()

  # ---------------------------------------------------------------- report
  last = log.last
  if start_step == config.total_steps:
    print(f"the checkpoint at step {start_step} already finished this run; nothing to train")
    if eval_batches:
      last.update(evaluator(full_params(state), config.total_steps))
  for line in objective.report(last, eval_batches) if is_primary else ():
    print(line)
  if start_step < config.total_steps:
    report = cost.cost_report(
        flops_per_step * (config.total_steps - start_step), device_kind, device_count,
        time.time() - clock.start, float(np.mean(log.mfus)) if log.mfus else None, config.cost,
        dtype=model_cfg.dtype)
    if is_primary:
      print(cost.format_cost_report(report))
      cost.save_cost_report(workdir, report)
  if is_primary and "judge/win_rate" in last:
    print("judged by the reward model on held-out prompts: " +
          ", ".join(f"{k.split('/')[1]} {v:.4g}" for k, v in last.items() if k.startswith("judge/")))
  if config.sample.prompt and objective.samples(config):
    s = config.sample
    finetuned = objective.finetuning(config)
    prompt = sft.prompt_text([("user", s.prompt)], config.finetune.template) if finetuned else s.prompt
    text = Sampler(setup.graphdef, full_params(state), tokenizer).generate(
        [prompt], s.max_new_tokens, s.temperature, s.top_k, s.top_p, seed=config.seed)[0]
    if is_primary:
      print(f"sample: {prompt + text!r}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
