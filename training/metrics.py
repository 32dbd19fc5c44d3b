"""Where metrics go: WORKDIR/metrics.jsonl, TensorBoard scalars in WORKDIR, and one console line.

metrics.jsonl holds one JSON object per `write` call: {"step": int, <name>: float | null | str}.
It is strict JSON: None, NaN and infinities are written as null (the console line still shows nan).
On resume from step s the rows with step > s are dropped first (atomically), and TensorBoard is
told to purge events after s, so a resumed run's files read like an uninterrupted run's.

Keys the console line knows: `loss`, `eval_loss`, `eval_bpb`, `tokens_per_second`, and `mfu`
(a fraction of peak, printed as %; None -> "n/a"). Everything else goes to the files only.
"""

import json
import math
import os
import time

import numpy as np
import tensorboardX

from input_pipeline import files

METRICS_FILE = "metrics.jsonl"


def _scalar(value):
  """None and strings pass through; jax / numpy / Python numbers -> float (fetched if needed)."""
  if value is None or isinstance(value, str):
    return value
  value = np.asarray(value)
  if value.size != 1:
    raise ValueError(f"metrics must be scalars, got shape {value.shape}")
  return float(value.reshape(()))


def read_metrics(workdir):
  """Rows of WORKDIR/metrics.jsonl as dicts; a torn last line (crash mid-write) is skipped."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = [line for line in f.read().split("\n") if line.strip()]
  rows = []
  for i, line in enumerate(lines):
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      if i != len(lines) - 1:
        raise ValueError(f"{path} line {i + 1} is not JSON: {line[:80]!r}") from None
  return rows


def _truncate_after(path, start_step):
  """Rewrites `path` keeping rows with step <= start_step, atomically (a crash keeps the old)."""
  if not os.path.exists(path):
    return
  kept = [row for row in read_metrics(os.path.dirname(path)) if row["step"] <= start_step]
  files.write_atomically(path, "".join(json.dumps(row, allow_nan=False) + "\n" for row in kept))


def _duration(seconds):
  seconds = int(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _count(x):
  for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
    if abs(x) >= scale:
      return f"{x / scale:.1f}{unit}"
  return f"{x:.0f}"


def progress_bar(done, total, width=20):
  """`[#####...............]  25%`: the one bar, for training's console line and eval's scoring."""
  frac = min(max(done / total, 0.0), 1.0) if total else 0.0
  filled = int(round(frac * width))
  return f"[{'#' * filled}{'.' * (width - filled)}] {frac:4.0%}"


def format_line(step, total_steps, metrics, steps_per_second=None, width=20):
  """`[#####.....]  25% step 250/1000 | loss 3.2100 | ... | MFU 31.2% | ETA 4m10s`."""
  parts = [f"{progress_bar(step, total_steps, width)} step {step}/{total_steps}"]
  number = lambda k: metrics.get(k) if isinstance(metrics.get(k), float) else None
  if number("loss") is not None:
    parts.append(f"loss {number('loss'):.4f}")
  evals = [f"{k} {number(k):.4f}" for k in ("eval_loss", "eval_bpb") if number(k) is not None]
  if evals:
    parts.append(" ".join(evals))
  if number("tokens_per_second") is not None:
    parts.append(f"{_count(number('tokens_per_second'))} tok/s")
  mfu = number("mfu")
  parts.append("MFU n/a" if mfu is None else f"MFU {100 * mfu:.1f}%")
  if steps_per_second:
    parts.append(f"ETA {_duration(max(total_steps - step, 0) / steps_per_second)}")
  else:
    parts.append("ETA ?")
  return " | ".join(parts)


class MetricsLogger:
  """Writes each `write(step, metrics)` to metrics.jsonl, TensorBoard and the console."""

  def __init__(self, workdir, total_steps, start_step=0, is_primary=True, clock=time.monotonic):
    self.workdir = workdir
    self.total_steps = total_steps
    self.is_primary = is_primary
    self._clock = clock
    self._first = None  # (time, step) of the first write: the rate excludes compile time before it
    self._rate = None
    if not is_primary:
      return
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, METRICS_FILE)
    if start_step > 0:
      _truncate_after(self.path, start_step)
    elif os.path.exists(self.path):
      os.remove(self.path)  # a fresh run in a reused workdir starts a fresh file
    self._file = open(self.path, "a")
    # TensorBoard hides events logged at or after purge_step by an earlier (interrupted) run.
    self._tb = tensorboardX.SummaryWriter(
        workdir, purge_step=start_step + 1 if start_step > 0 else 0, flush_secs=30)

  def write(self, step, metrics):
    if not self.is_primary:
      return
    step = int(step)
    values = {k: _scalar(v) for k, v in metrics.items()}
    row = {"step": step}
    row.update({k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in values.items()})
    self._file.write(json.dumps(row, allow_nan=False) + "\n")
    self._file.flush()
    for k, v in values.items():
      if isinstance(v, float):
        self._tb.add_scalar(k, v, step)

    now = self._clock()
    if self._first is None:
      self._first = (now, step)
    elif step > self._first[1] and now > self._first[0]:
      self._rate = (step - self._first[1]) / (now - self._first[0])
    print(format_line(step, self.total_steps, values, self._rate), flush=True)

  def close(self):
    if not self.is_primary:
      return
    self._file.close()
    self._tb.close()
