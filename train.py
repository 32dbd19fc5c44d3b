r"""Pretrain or fine-tune a decoder: the same code on a laptop CPU, one GPU, a GPU cluster or a TPU pod.

  python train.py --config=configs/llama.py:tiny --workdir=runs/tiny [--config.total_steps=2000]
  python train.py --config=configs/llama.py:7b --workdir=runs/plan7b --dry_run
  python train.py --config=configs/sft.py:smollm2_fireact --workdir=runs/sft   (also reward.py, dpo.py, ppo.py)

Only the loss changes between stages (`config.objective`: lm, reward, dpo, ppo; training/steps.py);
fine-tuning starts from `config.init_from` and reads `config.finetune`'s files. Re-running the
same command resumes from the newest checkpoint in the workdir.
"""

import functools
import json
import math
import os
import re
import signal
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

from training import distributed

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
    from configs import common  # pylint: disable=g-import-not-at-top
    from training import config_check  # pylint: disable=g-import-not-at-top
    spec = next((a.split("=", 1)[1] for a in argv if re.match(r"--?config=", a)), None)
    config = common.load_config(spec) if spec else None
    for arg in argv[1:]:
      override = re.match(r"--?config\.([^=]+)", arg)
      problem = override and config is not None and config_check.unknown_field(config, override.group(1))
      if problem:
        sys.exit(f"FATAL Flags parsing error: --config.{override.group(1)}: {problem}.")
    raise


def main(argv):
  del argv
  config, workdir = _CONFIG.value, _WORKDIR.value
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax and JAX log every save at INFO; --verbosity=0 shows it

  # ---------------------------------------------------------------- cluster
  process_index, process_count = distributed.initialize(
      _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  import jax  # pylint: disable=g-import-not-at-top  (after jax.distributed.initialize)
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx

  from eval import data as eval_data, suite
  from eval.lm import LM
  from input_pipeline import finetune, loader, sft, tokenizer as tokenizer_lib
  from models import partitioning, transformer
  from models.decode import Sampler
  from training import checkpoint, config_check, cost, mesh as mesh_lib, metrics as metrics_lib
  from training import ppo, state as train_state, steps, workdir as workdir_lib

  is_primary = process_index == 0
  # ---------------------------------------------------------------- source model (fine-tuning)
  source_params = tokenizer = None
  if config.init_from:
    source_config, _, source_params, tokenizer = workdir_lib.load(config.init_from)
    with config.unlocked():
      config.model = workdir_lib.finetune_model_config(source_config.model, config.model)
      if os.path.exists(config.init_from):  # a path: absolute, so the workdir reloads from anywhere
        config.init_from = os.path.abspath(config.init_from)
    print(f"fine-tuning from {config.init_from} ({config.objective}; "
          f"{'LoRA rank ' + str(config.model.lora_rank) if config.model.lora_rank else 'all weights'})")
  mesh_sizes = config_check.check(config, jax.device_count(), process_count)
  finetuning = config.objective != "lm" or bool(config.finetune.train_files)
  os.makedirs(workdir, exist_ok=True)
  if is_primary:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
    with open(os.path.join(workdir, "run_info.json"), "w") as f:
      json.dump(dict(git_commit=workdir_lib.git_commit(), argv=sys.argv, devices=jax.device_count(),
                     device_kind=jax.devices()[0].device_kind, processes=process_count), f, indent=2)
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
      workdir_lib.save_tokenizer(tokenizer, workdir)
    if finetuning:
      data = finetune.load(config, tokenizer)
      print(finetune.summary(data, config))
      eval_batches = finetune.eval_batches(data, config, process_index, process_count) if config.eval_every else []
    else:
      train_iter = loader.make_train_iterator(config, tokenizer, process_index, process_count)
      eval_batches = loader.make_eval_batches(config, tokenizer, process_index, process_count) if config.eval_every else []

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
  graphdef = setup.graphdef
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

  # ---------------------------------------------------------------- fine-tuning: frozen weights, data
  frozen = setup.bind(source_params)  # LoRA's base weights; DPO's on-the-fly reference
  compiled_step = lambda state, batch: setup.step(state, batch, frozen)
  full_params = lambda state: steps.combine(frozen["base"], state["params"])
  reference = None  # (graphdef, params) of the frozen reference model: dpo, ppo
  reward_model = None  # (graphdef, params): ppo's reward, the judge of dpo / ppo win rates
  if config.objective in ("dpo", "ppo"):
    reference = (transformer.split_model(transformer.abstract_model(train_state.reference_config(model_cfg)))[0],
                 source_params)
  if config.reward_model and config.objective in ("dpo", "ppo"):
    _, rm_graphdef, rm_params, rm_tokenizer = workdir_lib.load(config.reward_model, mesh=mesh)
    if not nnx.merge(rm_graphdef, rm_params).cfg.score_head:
      raise ValueError(f"config.reward_model {config.reward_model!r} has no score head: not a reward model")
    ppo.check_same_tokenizer(tokenizer, rm_tokenizer, f"config.reward_model {config.reward_model!r}")
    reward_model = (rm_graphdef, rm_params)
  if finetuning:
    ref_logprobs = None
    if config.objective == "dpo" and config.dpo.reference == "precomputed":
      t0 = time.time()
      with partitioning.activation_sharding(mesh, rules):
        ref_logprobs = [np.asarray(ppo.policy_outputs(*reference, to_global(b))[0]).reshape(-1, 2, config.seq_len)
                        for b in finetune.pair_batches(data.train, config)]
      ref_logprobs = np.concatenate(ref_logprobs)[:len(data.train)]
      print(f"reference log-probabilities of {len(data.train)} pairs precomputed in {time.time() - t0:.1f}s")
    train_iter = finetune.train_iterator(data, config, process_index, process_count, ref_logprobs)
    if config.objective == "ppo":
      train_iter = ppo.RolloutIterator(train_iter, config, graphdef, reference, reward_model, tokenizer.eos_id, mesh)

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

  # ---------------------------------------------------------------- evals
  token_bytes = jnp.asarray(tokenizer.token_byte_lengths(), jnp.float32)
  if config.objective == "lm":
    eval_step = jax.jit(steps.make_eval_step(graphdef, token_bytes))
  else:  # the training loss and its metrics on held-out pairs, without dropout
    loss_fn = setup.loss_fn
    eval_step = jax.jit(lambda params, batch: loss_fn(graphdef, params, batch, reference=reference))

  def evaluate(state, step):
    t0 = time.time()
    params = full_params(state)
    with partitioning.activation_sharding(mesh, rules):
      sums = [eval_step(params, to_global(b)) for b in eval_batches]
    record = {}
    if sums:
      total = jax.device_get(jax.tree.map(lambda *x: sum(x), *sums))
      weight = max(float(total["weight"]), 1.0)
      if config.objective == "lm":
        record = dict(eval_loss=float(total["nll"] / weight),
                      eval_bpb=float(total["nll"] / math.log(2) / max(total["bytes"], 1)))
      else:
        record = {f"eval_{k}": float(v / weight) for k, v in total.items() if k not in ("objective", "weight")}
    if reward_model is not None and config.ppo.eval_prompts and data.held_out_prompts:
      with partitioning.activation_sharding(mesh, rules):
        judged = ppo.compare((graphdef, params), reference, reward_model, data.held_out_prompts[:config.ppo.eval_prompts],
                             config.ppo, config.seq_len, tokenizer.eos_id, seed=config.seed)
      record.update({f"judge/{k}": v for k, v in judged.items()})
    clock["paused"] += time.time() - t0
    record.update(benchmarks(params, step))
    return record

  def benchmarks(params, step):
    """config.evals: the benchmark tasks of eval/ (as `python -m eval.run` runs them)."""
    evals = config.evals
    evaluation_index = step // config.eval_every
    due = step == config.total_steps or (evals.every and evaluation_index % evals.every == 0)
    if not evals.tasks or not due:
      return {}
    t0 = time.time()
    lm = LM(graphdef, params, tokenizer, os.path.basename(workdir), mesh=mesh, max_length=config.seq_len,
            template=sft.model_template(config, tokenizer))
    results = suite.run(lm, evals.tasks, eval_data.data_dir(evals.data_dir), default_limit=evals.limit)
    clock["paused"] += time.time() - t0
    return {f"{r['spec']}/{name}": value for r in results for name, value in r["metrics"].items()}

  # ---------------------------------------------------------------- train loop
  writer = metrics_lib.MetricsLogger(workdir, config.total_steps, start_step, is_primary)
  stop = dict(signal=None)
  signal.signal(signal.SIGTERM, lambda signum, _: stop.update(signal=signum))
  clock = dict(step=start_step, time=time.time(), paused=0.0)  # the last logged step, for tokens/s
  loop_start, mfus, last_logged = time.time(), [], {}

  def finish(step, metrics, evaluate_now=False):
    """Fetch a step's metrics, check them, log them. Called one step late unless the step must be
    synchronous (eval, checkpoint, signal), so the device does not wait for the host."""
    metrics = jax.device_get(metrics)
    if not all(math.isfinite(float(metrics[k])) for k in ("loss", "grad_norm", "param_norm")):
      ckpt.wait()  # an async save of an earlier (good) step may be in flight: let it finish
      raise FloatingPointError(
          f"step {step}: loss {metrics['loss']}, grad norm {metrics['grad_norm']}, param norm "
          f"{metrics['param_norm']}: not finite; stopping. The last good checkpoint "
          f"(step {ckpt.latest_step()}) is kept in {workdir}/checkpoints.")
    if step % config.log_every and not evaluate_now and step != config.total_steps:
      return
    now = time.time()
    tokens_per_second = (step - clock["step"]) * tokens_per_step / max(now - clock["time"] - clock["paused"], 1e-9)
    mfu = cost.mfu(tokens_per_second, flops_per_token, jax.device_count(), peak)
    if mfu is not None and clock["step"] > start_step:  # the first interval holds no compile, but warm-up
      mfus.append(mfu)
    record = dict(loss=float(metrics["loss"]), learning_rate=float(metrics["learning_rate"]),
                  grad_norm=float(metrics["grad_norm"]), tokens_per_second=tokens_per_second, mfu=mfu)
    if model_cfg.z_loss:
      record["z_loss"] = float(metrics["z_loss"])
    record.update({k: float(v) for k, v in metrics.items() if k not in record and k not in (
        "z_loss", "param_norm", "tokens")})
    record.update({f"rollout/{k}": v for k, v in getattr(train_iter, "stats", {}).items()})
    if evaluate_now:
      record.update(evaluate(state, step))
    writer.write(step, record)
    last_logged.update(record)
    clock.update(step=step, time=time.time(), paused=0.0)

  step, pending = start_step, None
  while step < config.total_steps:
    if config.objective == "ppo":
      train_iter.set_policy(full_params(state))  # the next rollout samples the current policy
    batch = to_global(next(train_iter))
    with partitioning.activation_sharding(mesh, rules), jax.transfer_guard("disallow"):
      state, metrics = compiled_step(state, batch)
    step += 1
    if pending:
      finish(*pending)
    evaluate_now = bool(eval_batches or reward_model) and bool(config.eval_every) and (
        step % config.eval_every == 0 or step == config.total_steps)
    checkpoint_now = (config.checkpoint_every and step % config.checkpoint_every == 0) or step == config.total_steps
    pending = (step, metrics)
    if evaluate_now or checkpoint_now or stop["signal"]:
      finish(step, metrics, evaluate_now)  # evaluates the params of exactly this step
      pending = None
    if checkpoint_now or stop["signal"]:
      t0 = time.time()
      ckpt.save(step, state, train_iter, force=True)
      clock["paused"] += time.time() - t0
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
  if start_step == config.total_steps:
    print(f"the checkpoint at step {start_step} already finished this run; nothing to train")
    if eval_batches:
      last_logged.update(evaluate(state, config.total_steps))
  if is_primary and "eval_bpb" in last_logged:
    print(f"held-out: loss {last_logged['eval_loss']:.4f} nats/token, {last_logged['eval_bpb']:.4f} bits/byte")
  if start_step < config.total_steps:
    report = cost.cost_report(
        flops_per_step * (config.total_steps - start_step), device_kind, device_count,
        time.time() - loop_start, float(np.mean(mfus)) if mfus else None, config.cost, dtype=model_cfg.dtype)
    if is_primary:
      print(cost.format_cost_report(report))
      cost.save_cost_report(workdir, report)
  if is_primary and "eval_accuracy" in last_logged:
    print(f"held-out: pairwise accuracy {last_logged['eval_accuracy']:.4f}, loss {last_logged['eval_loss']:.4f} "
          f"over {sum(1 for b in eval_batches for w in b['loss_weights'][0::2] if w.any())} pairs")
  if is_primary and "judge/win_rate" in last_logged:
    print("judged by the reward model on held-out prompts: " +
          ", ".join(f"{k.split('/')[1]} {v:.4g}" for k, v in last_logged.items() if k.startswith("judge/")))
  if config.sample.prompt and (not model_cfg.score_head or config.objective == "ppo"):
    s = config.sample
    prompt = sft.prompt_text([("user", s.prompt)], config.finetune.template) if finetuning else s.prompt
    sampler = Sampler(graphdef, full_params(state), tokenizer)
    text = sampler.generate([prompt], s.max_new_tokens, s.temperature, s.top_k, s.top_p, seed=config.seed)[0]
    if is_primary:
      print(f"sample: {prompt + text!r}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
