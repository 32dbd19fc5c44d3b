"""Evaluation inside train.py, at every config.eval_every steps and at the end:

  held-out   the objective's own eval step and metrics on its fixed held-out batches
             (lm: eval_loss, eval_bpb; reward / dpo: the loss's metrics per pair)
  judge      for objectives a reward model judges (dpo, ppo; config.reward_model set): the
             policy against the frozen reference on held-out prompts (eval/judge.py)
  benchmarks config.evals.tasks, the same code as `python -m eval.run`, every evals.every-th
             evaluation and at the last step. Its LM (eval/lm.py) is built once per run with the
             run's own logical-axis rules and given new weights each time, so nothing recompiles.

All of it runs in the clock's paused time, so tokens/s and MFU count training only.
"""

import os

import jax

from eval import data as eval_data, judge, suite
from eval.lm import LM
from input_pipeline import sft
from models import partitioning


class Evaluator:
  """evaluator(params, step) -> {metric: value} for the metrics writer."""

  def __init__(self, config, workdir, objective, run, loss_fn, eval_batches, held_out_prompts,
               token_bytes, clock):
    self.config, self.workdir, self.run, self.clock = config, workdir, run, clock
    self.objective, self.eval_batches = objective, eval_batches
    self.rules = tuple(config.logical_axis_rules)
    self.eval_step = jax.jit(objective.eval_step(objective, run.graphdef, loss_fn, run.reference, token_bytes))
    judged = objective.judged and run.reward_model is not None
    self.judge_prompts = held_out_prompts[:config.ppo.eval_prompts] if judged and config.ppo.eval_prompts else []
    self.has_work = bool(eval_batches) or judged
    self.lm = None  # the benchmarks' model, built at the first benchmark evaluation

  def __call__(self, params, step):
    with self.clock.paused():
      record = self.held_out(params)
      record.update(self.judged(params))
      record.update(self.benchmarks(params, step))
    return record

  def held_out(self, params):
    with partitioning.activation_sharding(self.run.mesh, self.rules):
      sums = [self.eval_step(params, self.run.to_global(b)) for b in self.eval_batches]
    if not sums:
      return {}
    return self.objective.eval_metrics(jax.device_get(jax.tree.map(lambda *x: sum(x), *sums)))

  def judged(self, params):
    if not self.judge_prompts:
      return {}
    config, run = self.config, self.run
    with partitioning.activation_sharding(run.mesh, self.rules):
      result = judge.compare((run.graphdef, params), run.reference, run.reward_model, self.judge_prompts,
                             config.ppo, config.seq_len, run.tokenizer.eos_id, seed=config.seed)
    return {f"judge/{k}": v for k, v in result.items()}

  def benchmarks(self, params, step):
    """config.evals: the benchmark tasks of eval/ (as `python -m eval.run` runs them)."""
    config, evals = self.config, self.config.evals
    due = step == config.total_steps or (evals.every and (step // config.eval_every) % evals.every == 0)
    if not evals.tasks or not due:
      return {}
    if self.lm is None:
      self.lm = LM(self.run.graphdef, params, self.run.tokenizer, os.path.basename(self.workdir),
                   mesh=self.run.mesh, max_length=config.seq_len, rules=self.rules,
                   template=sft.model_template(config, self.run.tokenizer))
    else:
      self.lm.set_params(params)
    results = suite.run(self.lm, evals.tasks, eval_data.data_dir(evals.data_dir), default_limit=evals.limit)
    return {f"{r['spec']}/{name}": value for r in results for name, value in r["metrics"].items()}
