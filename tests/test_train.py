"""train.py end to end, run as the user runs it (a subprocess): resume after SIGKILL and SIGTERM,
a non-finite loss, restoring onto another mesh, two processes, bad input and --dry_run.

Every run trains the `runlocal` LLaMA on the tiny test corpus for 40 steps (~1 s of training after
~10 s of start-up and compiling), checkpointing every 4 steps, on 8 forced CPU devices.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import portpicker
import pytest

from training import config as config_lib
from training import metrics as metrics_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOTAL_STEPS = 40
CHECKPOINT_EVERY = 4
EVAL_EVERY = 8
# The conftest tiny setup as flags; vocab 400 and seq_len 32 keep each step ~20 ms.
OVERRIDES = dict(
    total_steps=TOTAL_STEPS, checkpoint_every=CHECKPOINT_EVERY, eval_every=EVAL_EVERY, log_every=1,
    eval_batches=3, seq_len=32, batch_size=8, **{
        "model.vocab_size": 400, "data.path": "*.txt", "data.chunk_chars": 300,
        "data.num_threads": 0, "sample.prompt": "", "mesh.data": 8})
LOSS_KEYS = ("loss", "grad_norm", "learning_rate", "eval_loss", "eval_bpb")


def train_args(corpus_dir, workdir, **overrides):
  """Command line of the reference run with `overrides` ({"mesh.data": 4, ...}) applied."""
  fields = dict(OVERRIDES, **{"data.data_dir": str(corpus_dir)})
  fields.update(overrides)
  return (["train.py", "--config=configs/llama.py:runlocal=True", f"--workdir={workdir}",
           "--verbosity=-1"] + [f"--config.{k}={v}" for k, v in fields.items()])


def env_for(devices):
  return dict(os.environ, JAX_PLATFORMS="cpu",
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def start(args, devices=8):
  return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env_for(devices), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run(args, devices=8, timeout=240):
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env_for(devices), text=True,
                        capture_output=True, timeout=timeout)


def run_ok(args, devices=8):
  result = run(args, devices)
  assert result.returncode == 0, result.stderr[-4000:]
  return result


def finalized_steps(workdir):
  """Checkpoint steps Orbax has committed (a save in flight is `<step>.orbax-checkpoint-tmp`)."""
  directory = os.path.join(workdir, "checkpoints")
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit()) if os.path.isdir(directory) else []


def wait_until(proc, condition, what, timeout=180):
  """Polls `condition()` every 5 ms while `proc` runs; returns its first truthy value."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    value = condition()
    if value:
      assert proc.poll() is None, f"the run finished before it could be interrupted ({what})"
      return value
    if proc.poll() is not None:
      pytest.fail(f"train.py exited ({proc.returncode}) before {what}:\n" + proc.stderr.read()[-4000:])
    time.sleep(0.005)
  proc.kill()
  pytest.fail(f"no {what} within {timeout} s")


def interrupt(args, condition, what, sig):
  """Starts train.py, waits for `condition()`, sends `sig`; -> (condition's value, returncode, stderr)."""
  proc = start(args)
  try:
    value = wait_until(proc, condition, what)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
  finally:
    proc.kill()
  return value, proc.returncode, stderr


def checkpoint_after(workdir, step):
  """-> the first finalized checkpoint step > `step`, or None."""
  return next((s for s in finalized_steps(workdir) if s > step), None)


def rows_by_step(workdir):
  rows = metrics_lib.read_metrics(workdir)
  steps = [row["step"] for row in rows]
  assert len(steps) == len(set(steps)), f"duplicate steps in metrics.jsonl: {steps}"
  return {row["step"]: row for row in rows}


def assert_same_losses(workdir, reference_workdir, rtol=0.0):
  """Every step of the reference is logged, with the same losses (bit-exact when rtol == 0)."""
  got, want = rows_by_step(workdir), rows_by_step(reference_workdir)
  assert sorted(got) == sorted(want) == list(range(1, TOTAL_STEPS + 1))
  for step, row in want.items():
    keys = [k for k in LOSS_KEYS if k in row]
    assert keys == [k for k in LOSS_KEYS if k in got[step]], step
    if rtol == 0:
      assert {k: got[step][k] for k in keys} == {k: row[k] for k in keys}, f"step {step}"
    else:
      np.testing.assert_allclose([got[step][k] for k in keys], [row[k] for k in keys], rtol=rtol,
                                 err_msg=f"step {step} {keys}")


def local_config(corpus_dir, **mesh):
  """The reference run's config, in this process."""
  config = config_lib.load_config(os.path.join(REPO, "configs/llama.py:runlocal=True"))
  for key, value in dict(OVERRIDES, **{"data.data_dir": str(corpus_dir)}).items():
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = (value,) if key == "data.path" else value
  config.mesh.update(mesh)
  return config


@pytest.fixture(scope="module")
def reference(corpus_dir, tmp_path_factory):
  """Workdir of one uninterrupted run on one process with 8 devices, mesh data=8."""
  workdir = tmp_path_factory.mktemp("reference")
  result = run_ok(train_args(corpus_dir, workdir))
  return workdir, result


def test_run_writes_its_records(reference):
  workdir, result = reference
  with open(workdir / "config.json") as f:
    assert json.load(f)["total_steps"] == TOTAL_STEPS
  with open(workdir / "run_info.json") as f:
    info = json.load(f)
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                        text=True).stdout.strip()
  assert info["git_commit"].split("-")[0] == head and info["devices"] == 8
  with open(workdir / "cost_report.json") as f:
    assert json.load(f)["device_count"] == 8
  assert (workdir / "tokenizer.model").exists()
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir))
  rows = rows_by_step(workdir)
  assert sorted(rows) == list(range(1, TOTAL_STEPS + 1))
  for step, row in rows.items():
    assert {"loss", "learning_rate", "grad_norm", "tokens_per_second", "mfu"} <= row.keys()
    evaluated = step % EVAL_EVERY == 0
    assert evaluated == ("eval_loss" in row) == ("eval_bpb" in row), step
  assert rows[TOTAL_STEPS]["loss"] < rows[1]["loss"] - 1.0  # it learns
  assert "held-out: loss" in result.stdout and "cost report (measured)" in result.stdout
  assert finalized_steps(workdir)[-1] == TOTAL_STEPS


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_exact(reference, corpus_dir, tmp_path):
  reference_workdir, _ = reference
  args = train_args(corpus_dir, tmp_path)
  saved, returncode, _ = interrupt(args, lambda: checkpoint_after(tmp_path, CHECKPOINT_EVERY),
                                   f"a checkpoint after step {CHECKPOINT_EVERY}", signal.SIGKILL)
  assert returncode == -signal.SIGKILL
  assert saved < TOTAL_STEPS and finalized_steps(tmp_path)[-1] < TOTAL_STEPS
  run_ok(args)
  assert_same_losses(tmp_path, reference_workdir)


@pytest.mark.slow
def test_sigterm_saves_and_resumes(reference, corpus_dir, tmp_path):
  reference_workdir, _ = reference
  args = train_args(corpus_dir, tmp_path)
  # Orbax finalizes step 8 when step 12's save starts; signal between checkpoints, at ~14.
  _, returncode, stderr = interrupt(
      args, lambda: any(row["step"] >= 13 for row in metrics_lib.read_metrics(tmp_path)), "step 13",
      signal.SIGTERM)
  assert returncode == 128 + signal.SIGTERM, stderr[-4000:]
  reached = max(rows_by_step(tmp_path))
  assert f"checkpoint at step {reached} saved" in stderr
  assert finalized_steps(tmp_path)[-1] == reached < TOTAL_STEPS  # saved where it stopped
  run_ok(args)
  assert_same_losses(tmp_path, reference_workdir)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(corpus_dir, tmp_path):
  # Step 1 has learning rate 0 (warmup); step 2's 1e30 update overflows the params, which the
  # param-norm check catches before checkpoint 2 is written.
  result = run(train_args(corpus_dir, tmp_path, **{"optimizer.learning_rate": 1e30,
                                                    "checkpoint_every": 1, "eval_every": 0}))
  assert result.returncode != 0
  match = re.search(r"step (\d+): loss \S+, grad norm \S+, param norm \S+: not finite; stopping\. "
                    r"The last good checkpoint \(step (\d+)\)", result.stderr)
  assert match, result.stderr[-4000:]
  bad_step, good_step = int(match.group(1)), int(match.group(2))
  assert 1 <= good_step < bad_step < TOTAL_STEPS
  assert max(rows_by_step(tmp_path)) == bad_step - 1  # the bad step is not logged
  assert good_step in finalized_steps(tmp_path)

  from training import checkpoint, mesh as mesh_lib, state as train_state
  config = local_config(corpus_dir)
  setup = train_state.build(config, mesh_lib.make_mesh(config.mesh))
  ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
  state = ckpt.restore(good_step, setup.abstract_state)
  ckpt.close()
  assert int(state["step"]) == good_step
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state["params"])))


def test_restore_on_another_mesh_gives_the_same_eval_loss(reference, corpus_dir):
  from input_pipeline import loader, tokenizer as tokenizer_lib
  from models import partitioning
  from training import checkpoint, mesh as mesh_lib, state as train_state
  from training.objectives import lm as lm_objective
  workdir, _ = reference
  config = local_config(corpus_dir, data=2, fsdp=2, tensor=2)
  mesh = mesh_lib.make_mesh(config.mesh)
  setup = train_state.build(config, mesh)
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints")
  state = ckpt.restore(TOTAL_STEPS, setup.abstract_state)
  ckpt.close()
  assert not state["params"]["layers"]["attn"]["wq"].sharding.is_fully_replicated

  tokenizer = tokenizer_lib.get_tokenizer(config.data, vocab_size=config.model.vocab_size,
                                          workdir=str(workdir))
  rules = tuple(config.logical_axis_rules)
  token_bytes = np.asarray(tokenizer.token_byte_lengths(), np.float32)
  with partitioning.activation_sharding(mesh, rules):
    eval_step = jax.jit(lm_objective.make_eval_step(setup.graphdef, token_bytes),
                        in_shardings=(setup.param_shardings, setup.batch_sharding))
    sums = [jax.device_get(eval_step(state["params"], train_state.to_global(setup.batch_sharding, b)))
            for b in loader.make_eval_batches(config, tokenizer, 0, 1)]
  eval_loss = sum(s["nll"] for s in sums) / sum(s["weight"] for s in sums)
  np.testing.assert_allclose(eval_loss, rows_by_step(workdir)[TOTAL_STEPS]["eval_loss"], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("mesh", [{"mesh.data": 8}, {"mesh.data": 4, "mesh.fsdp": 2}],
                         ids=["data8", "data4_fsdp2"])
def test_two_processes_match_one(reference, corpus_dir, tmp_path, mesh):
  reference_workdir, _ = reference
  port = portpicker.pick_unused_port()
  args = train_args(corpus_dir, tmp_path, **mesh)
  procs = [start(args + [f"--coordinator_address=localhost:{port}", "--num_processes=2",
                         f"--process_id={i}"], devices=4) for i in range(2)]
  outputs = []
  try:
    for proc in procs:
      outputs.append(proc.communicate(timeout=240))
  finally:
    for proc in procs:
      proc.kill()
  for proc, (_, stderr) in zip(procs, outputs):
    assert proc.returncode == 0, stderr[-4000:]
  with open(tmp_path / "run_info.json") as f:
    assert json.load(f)["processes"] == 2
  data_files = os.listdir(tmp_path / "checkpoints" / str(TOTAL_STEPS) / "data")
  assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(data_files)
  assert_same_losses(tmp_path, reference_workdir, rtol=1e-5)  # and one row per step: only process 0 logs


@pytest.mark.parametrize("overrides, message", [
    (["--config.model.nope=1"], ["--config.model.nope", "config.model has no field 'nope'"]),
    (["--config.mesh.data=3"], ["config.mesh", "'data': 3", "has 3 devices but this run has 8"]),
    (["--config.batch_size=4"], ["config.batch_size = 4", "mesh data x fsdp = 8"]),
    (["--config.data.path=missing/*.txt"], ["data.path entry", "missing/*.txt", "matches no file"]),
], ids=["unknown_field", "mesh_vs_devices", "batch_vs_mesh", "missing_data"])
def test_bad_config_fails_clearly(corpus_dir, tmp_path, overrides, message):
  result = run(train_args(corpus_dir, tmp_path / "w") + overrides)
  assert result.returncode != 0
  for part in message:
    assert part in result.stderr, result.stderr[-3000:]


def test_empty_data_files_fail_clearly(corpus_dir, tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "a.txt").write_text("")
  (empty / "b.txt").write_text("\n")
  result = run(train_args(corpus_dir, tmp_path / "w", **{"data.data_dir": empty}))
  assert result.returncode != 0
  assert "matched 2 file(s)" in result.stderr and "hold no text" in result.stderr, result.stderr[-3000:]


def test_tokenizer_larger_than_model_vocab_fails_clearly(reference, corpus_dir, tmp_path):
  tokenizer_path = reference[0] / "tokenizer.model"
  result = run(train_args(corpus_dir, tmp_path / "w", **{"data.tokenizer": tokenizer_path,
                                                           "model.vocab_size": 300}))
  assert result.returncode != 0
  assert f"tokenizer {tokenizer_path} has 400 tokens but config.model.vocab_size is 300" in result.stderr


def test_resuming_with_another_model_shape_fails_clearly(reference, corpus_dir, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(reference[0], workdir)
  result = run(train_args(corpus_dir, workdir, **{"model.embed_dim": 32}))
  assert result.returncode != 0
  assert ("params/embedding: checkpoint has shape (400, 64), the model expects (400, 32)"
          in result.stderr), result.stderr[-3000:]
  assert rows_by_step(workdir) == rows_by_step(reference[0])  # nothing was overwritten


def test_dry_run_plans_7b_without_allocating_it(tmp_path):
  args = ["train.py", "--config=configs/llama.py:7b", f"--workdir={tmp_path}", "--dry_run",
          "--verbosity=-1", "--config.cost.device_kind=A100-80GB", "--config.cost.device_count=2048"]
  with open(tmp_path / "out.txt", "w") as out:
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env_for(1), stdout=out,
                            stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
  stdout = (tmp_path / "out.txt").read_text()
  assert proc.returncode == 0, stdout[-4000:]
  assert "params: 6,738,415,616" in stdout
  assert "FLOPs per step: 1.798e+17" in stdout
  assert "train state (params + optimizer): 75.308 GiB" in stdout
  assert "cost report (planned)" in stdout and "2048 x A100-80GB" in stdout
  with open(tmp_path / "cost_plan.json") as f:
    plan = json.load(f)
  assert plan["device_count"] == 2048 and plan["total_flops"] > 4e22
  assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()
  assert usage.ru_maxrss < 4 * 2**20  # KiB: the 27 GB of float32 weights were never allocated


def test_workdir_load_gives_the_trained_model(reference):
  """training.model_source.load: config, params (default replicated layout) and tokenizer of a run."""
  from input_pipeline import loader
  from training import model_source
  from training.objectives import lm as lm_objective
  workdir, _ = reference
  config, graphdef, params, tokenizer = model_source.load(str(workdir))
  assert config.total_steps == TOTAL_STEPS and tokenizer.vocab_size <= config.model.vocab_size
  assert params["layers"]["attn"]["wq"].sharding.is_fully_replicated
  eval_step = jax.jit(lm_objective.make_eval_step(graphdef, np.asarray(tokenizer.token_byte_lengths(), np.float32)))
  sums = [jax.device_get(eval_step(params, b)) for b in loader.make_eval_batches(config, tokenizer, 0, 1)]
  eval_loss = sum(s["nll"] for s in sums) / sum(s["weight"] for s in sums)
  np.testing.assert_allclose(eval_loss, rows_by_step(workdir)[TOTAL_STEPS]["eval_loss"], rtol=1e-5)
  with pytest.raises(FileNotFoundError, match="is not a model"):
    model_source.load(str(workdir / "checkpoints"))
