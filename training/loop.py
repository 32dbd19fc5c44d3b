"""The training loop's clock and its per-step logging, shared by every objective.

    clock = loop.Clock(start_step)
    log = loop.StepLogger(config, workdir, writer, ckpt, clock, tokens_per_step, flops_per_token, peak, start_step)
    log(step, metrics)                      # one step late, so the device never waits for the host
    log(step, metrics, evaluate=fn)         # synchronous: fn() -> eval record, in paused time
"""

import contextlib
import math
import time

import jax

from training import cost


class Clock:
  """Wall time of the training loop. Time spent in `paused()` (evaluations, checkpoint writes)
  is left out of tokens/s and MFU."""

  def __init__(self, step):
    self.start = time.time()
    self.step, self.time, self.paused_seconds = step, self.start, 0.0  # since the last logged step

  @contextlib.contextmanager
  def paused(self):
    t0 = time.time()
    try:
      yield
    finally:
      self.paused_seconds += time.time() - t0

  def training_seconds(self, now):
    """Seconds spent training since the last logged step."""
    return now - self.time - self.paused_seconds

  def restart(self, step):
    """The logged step: the next interval starts now."""
    self.step, self.time, self.paused_seconds = step, time.time(), 0.0


class StepLogger:
  """Fetches a step's metrics, checks they are finite, logs them every config.log_every steps
  (and at evaluations, checkpoints, signals and the last step); `last` holds the newest record."""

  def __init__(self, config, workdir, writer, ckpt, clock, tokens_per_step, flops_per_token, peak,
               start_step, rollout_stats=lambda: {}):
    self.config, self.workdir, self.writer, self.ckpt, self.clock = config, workdir, writer, ckpt, clock
    self.tokens_per_step, self.flops_per_token, self.peak = tokens_per_step, flops_per_token, peak
    self.start_step, self.rollout_stats = start_step, rollout_stats
    self.mfus, self.last = [], {}

  def __call__(self, step, metrics, evaluate=None):
    config = self.config
    metrics = jax.device_get(metrics)
    if not all(math.isfinite(float(metrics[k])) for k in ("loss", "grad_norm", "param_norm")):
      self.ckpt.wait()  # an async save of an earlier (good) step may be in flight: let it finish
      raise FloatingPointError(
          f"step {step}: loss {metrics['loss']}, grad norm {metrics['grad_norm']}, param norm "
          f"{metrics['param_norm']}: not finite; stopping. The last good checkpoint "
          f"(step {self.ckpt.latest_step()}) is kept in {self.workdir}/checkpoints.")
    if step % config.log_every and evaluate is None and step != config.total_steps:
      return
    clock = self.clock
    tokens_per_second = (step - clock.step) * self.tokens_per_step / max(clock.training_seconds(time.time()), 1e-9)
    mfu = cost.mfu(tokens_per_second, self.flops_per_token, jax.device_count(), self.peak)
    if mfu is not None and clock.step > self.start_step:  # the first interval holds no compile, but warm-up
      self.mfus.append(mfu)
    record = dict(loss=float(metrics["loss"]), learning_rate=float(metrics["learning_rate"]),
                  grad_norm=float(metrics["grad_norm"]), tokens_per_second=tokens_per_second, mfu=mfu)
    if config.model.z_loss:
      record["z_loss"] = float(metrics["z_loss"])
    record.update({k: float(v) for k, v in metrics.items() if k not in record and k not in (
        "z_loss", "param_norm", "tokens")})
    record.update({f"rollout/{k}": v for k, v in self.rollout_stats().items()})
    if evaluate is not None:
      record.update(evaluate())
    self.writer.write(step, record)
    self.last.update(record)
    clock.restart(step)
