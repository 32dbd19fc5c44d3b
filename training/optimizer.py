"""AdamW with linear warmup, cosine decay, global-norm clipping and a weight-decay mask."""

import jax
import optax


def make_schedule(opt_cfg, total_steps):
  """Learning rate per step: 0 -> peak over warmup_steps, cosine to min_lr_ratio * peak at total_steps."""
  peak = opt_cfg.learning_rate
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=opt_cfg.warmup_steps,
      decay_steps=max(total_steps, opt_cfg.warmup_steps + 1), end_value=peak * opt_cfg.min_lr_ratio)


def decay_mask(params):
  """Decay matmul weights only: not norm scales, not the (input) embedding."""
  def decays(path, _):
    keys = [getattr(k, "key", str(k)) for k in path]
    return not any("norm" in str(k) or k == "embedding" for k in keys)
  return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(opt_cfg, total_steps):
  """(optax transformation, schedule)."""
  schedule = make_schedule(opt_cfg, total_steps)
  adamw = optax.adamw(schedule, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps,
                      weight_decay=opt_cfg.weight_decay, mask=decay_mask)
  if opt_cfg.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(opt_cfg.grad_clip_norm), adamw), schedule
  return adamw, schedule
