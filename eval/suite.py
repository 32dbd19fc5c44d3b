"""A list of task specs -> results, the same code for `python -m eval.run` and for evals during
training (`config.evals`).

A spec is "name" for a benchmark (eval/tasks) or "name/mode" for an agent task (eval/react, mode
one of standard, cot, act, react, fireact: e.g. "hotpotqa/fireact", FireAct's zero-shot chat
format in the model's template). Every spec is checked before anything runs, so a typo (or a
fireact spec for a model without a chat template) fails at once instead of after an hour of
scoring.
"""

import os

from absl import logging

from training.config import ConfigError

from eval import tasks as benchmark_tasks
from eval.react import runner as react_runner
from eval.react import agent, agent_tasks


def parse(spec):
  """'hellaswag' -> ('hellaswag', None); 'hotpotqa/react' -> ('hotpotqa', 'react')."""
  name, _, mode = spec.partition("/")
  if mode:
    if name not in agent_tasks.REACT_TASKS:
      raise ValueError(f"task spec {spec!r}: unknown agent task {name!r}; known: "
                       f"{', '.join(sorted(agent_tasks.REACT_TASKS))}")
    if mode not in agent.MODES:
      raise ValueError(f"task spec {spec!r}: unknown mode {mode!r}; known: {', '.join(agent.MODES)}")
    return name, mode
  if name in agent_tasks.REACT_TASKS:
    raise ValueError(f"task spec {spec!r}: agent tasks need a mode, e.g. {name}/react")
  benchmark_tasks.get(name)  # raises naming the known tasks
  return name, None


def check_specs(specs, where="evals.tasks"):
  """Every spec of a config's `evals.tasks` parses; a ConfigError naming the field otherwise."""
  for spec in specs:
    try:
      parse(spec)
    except ValueError as e:
      raise ConfigError(f"{where}: {e}") from e


def run(lm, specs, data_dir, limits=None, default_limit=None, trajectories_dir=None, on_result=None):
  """Runs each spec in order; returns the list of result records. limits: {spec or name: N}."""
  parsed = [(spec, *parse(spec)) for spec in specs]
  for _, _, mode in parsed:
    react_runner.chat_template(lm, mode)
  limits = dict(limits or {})
  results = []
  for spec, name, mode in parsed:
    limit = limits.get(spec, limits.get(name, default_limit))
    limit = None if limit in (None, 0, -1) else int(limit)
    logging.info("eval %s (limit %s)", spec, limit)
    if mode is None:
      result = benchmark_tasks.get(name).evaluate(lm, data_dir, limit=limit)
    else:
      path = None
      if trajectories_dir:
        os.makedirs(trajectories_dir, exist_ok=True)
        path = os.path.join(trajectories_dir, f"{name}_{mode}.jsonl")
      result = agent_tasks.evaluate(name, lm, data_dir, mode, limit=limit, trajectories_path=path)
    result["spec"] = spec
    results.append(result)
    if on_result:
      on_result(result)
  return results
