"""Running a task's episodes on the model and turning their trajectories into one result record:
the part every ReAct task shares (hotpotqa.py, fever.py and gsm8k_tools.py differ only in data,
tools and scoring)."""

import collections
import json
import math
import os
import time

from eval import api
from eval.react import agent


def check_mode(mode):
  if mode not in agent.MODES:
    raise ValueError(f"unknown ReAct mode {mode!r}; expected one of {agent.MODES}")


def chat_template(lm, mode):
  """The template episodes are written in: the model's (`lm.template`) for mode fireact, with a
  ValueError naming the problem when it cannot hold a conversation; None for the few-shot modes."""
  if mode != "fireact":
    return None
  agent.check_chat_template(lm.template, f"model {lm.name!r}")
  return lm.template


def run(lm, prefix, episodes, desc):
  """(trajectories, seconds): all episodes decoded together behind the shared few-shot prefix."""
  start = time.perf_counter()
  lm.run_episodes(prefix, episodes, desc=desc)
  seconds = time.perf_counter() - start
  unfinished = sum(e.trajectory is None for e in episodes)
  if unfinished:
    raise RuntimeError(f"run_episodes returned with {unfinished} of {len(episodes)} episodes "
                       "neither finished nor aborted")
  return [e.trajectory for e in episodes], seconds


def write_trajectories(path, trajectories):
  """One JSON object per line, in question order."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    for trajectory in trajectories:
      f.write(json.dumps(trajectory, ensure_ascii=False) + "\n")


def evaluate(task, lm, prefix, episodes, metric_names, *, mode, trajectories_path, extra=None,
             **result_fields):
  """Run `episodes`, write their trajectories, and return eval.api.result with the mean of each
  metric, its standard error, and the agent figures (episodes_per_minute, mean_steps,
  finish_reasons: {"finish" | "step_limit" | "context_full" | "no_answer": count})."""
  trajectories, seconds = run(lm, prefix, episodes, desc=f"{task} {mode}")
  if trajectories_path:
    write_trajectories(trajectories_path, trajectories)
  n = len(trajectories)
  metrics, stderr = api.summarise(trajectories, metric_names)
  agent_figures = dict(
      episodes_per_minute=round(60 * n / seconds, 2) if seconds > 0 else None,
      mean_steps=sum(t["steps"] for t in trajectories) / n if n else math.nan,
      finish_reasons=dict(collections.Counter(t["finish_reason"] for t in trajectories)),
      bad_calls=sum(t["bad_calls"] for t in trajectories),
      trajectories_path=trajectories_path)
  return api.result(task, metrics, stderr=stderr, samples=n, mode=mode, seconds=seconds,
                    extra={**agent_figures, **(extra or {})}, **result_fields)
