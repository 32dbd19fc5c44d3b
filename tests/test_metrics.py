import glob
import json
import os
import struct

import jax.numpy as jnp
import numpy as np
from tensorboardX.proto import event_pb2

from training import metrics


class FakeClock:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def _strict_rows(workdir):
  """Parses metrics.jsonl refusing NaN / Infinity, which are not JSON."""
  def refuse(name):
    raise ValueError(f"non-JSON constant {name}")
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line, parse_constant=refuse) for line in f]


def _tb_scalars(workdir):
  """(tag, step, value) from the TFRecord event files tensorboardX wrote."""
  out = []
  for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
    data = open(path, "rb").read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      for v in event.summary.value:
        out.append((v.tag, event.step, v.simple_value))
  return out


def _run(workdir, steps, start_step=0, clock=None):
  log = metrics.MetricsLogger(workdir, total_steps=10, start_step=start_step,
                              clock=clock or FakeClock())
  for step in steps:
    log.write(step, {"loss": jnp.float32(10.0 / step), "tokens_per_second": 1000.0 * step})
    if step % 5 == 0:
      log.write(step, {"eval_loss": np.float64(1.0 / step)})
  log.close()


def test_resumed_run_file_equals_uninterrupted(tmp_path):
  straight, resumed = str(tmp_path / "a"), str(tmp_path / "b")
  _run(straight, range(1, 11))
  _run(resumed, range(1, 9))  # crashed after step 8; last checkpoint at step 5
  with open(os.path.join(resumed, "metrics.jsonl"), "a") as f:
    f.write('{"step": 9, "loss"')  # torn line from the crash
  _run(resumed, range(6, 11), start_step=5)
  assert open(os.path.join(resumed, "metrics.jsonl")).read() == \
      open(os.path.join(straight, "metrics.jsonl")).read()
  rows = metrics.read_metrics(straight)
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 10]
  assert rows[4] == {"step": 5, "loss": 2.0, "tokens_per_second": 5000.0}
  assert rows[5] == {"step": 5, "eval_loss": 0.2}
  # A fresh run (start_step=0) in a reused workdir starts over.
  _run(straight, range(1, 3))
  assert [r["step"] for r in metrics.read_metrics(straight)] == [1, 2]


def test_nan_and_none_stay_valid_json_and_reach_tensorboard(tmp_path, capsys):
  log = metrics.MetricsLogger(str(tmp_path), total_steps=100, clock=FakeClock())
  log.write(3, {"loss": float("nan"), "grad_norm": jnp.inf, "mfu": None, "note": "warmup",
                "lr": jnp.array([0.5])})
  log.close()
  assert _strict_rows(tmp_path) == [
      {"step": 3, "loss": None, "grad_norm": None, "mfu": None, "note": "warmup", "lr": 0.5}]
  line = capsys.readouterr().out
  assert "loss nan" in line and "MFU n/a" in line and "ETA ?" in line
  scalars = {tag: (step, value) for tag, step, value in _tb_scalars(tmp_path)}
  assert set(scalars) == {"loss", "grad_norm", "lr"}
  assert scalars["lr"][0] == 3 and scalars["lr"][1] == 0.5
  assert np.isnan(scalars["loss"][1])


def test_console_line_has_progress_numbers_and_eta(tmp_path, capsys):
  clock = FakeClock()
  log = metrics.MetricsLogger(str(tmp_path), total_steps=1000, clock=clock)
  clock.now = 100.0  # compile time before the first write is not counted
  log.write(100, {"loss": 3.0})
  clock.now = 120.0  # 200 steps in 20 s -> 10 steps/s; 700 steps left -> 70 s
  log.write(300, {"loss": 2.5, "eval_loss": 2.75, "eval_bpb": 1.125,
                  "tokens_per_second": 123456.0, "mfu": 0.3125})
  log.close()
  line = capsys.readouterr().out.strip().splitlines()[-1]
  assert line.startswith("[######..............]  30% step 300/1000")
  for part in ("loss 2.5000", "eval_loss 2.7500 eval_bpb 1.1250", "123.5k tok/s",
               "MFU 31.2%", "ETA 1m10s"):
    assert part in line, (part, line)


def test_non_primary_writes_nothing(tmp_path, capsys):
  workdir = str(tmp_path / "w")
  log = metrics.MetricsLogger(workdir, total_steps=10, is_primary=False)
  log.write(1, {"loss": 1.0})
  log.close()
  assert not os.path.exists(workdir)
  assert capsys.readouterr().out == ""
