"""The ReAct task registry. Every entry is called as

  REACT_TASKS[name](lm, data_dir, mode, limit=None, trajectories_path=None) -> eval.api.result

with mode one of agent.MODES (fireact writes in the model's chat template, `lm.template`); `limit` =
the first N examples; trajectories (one JSON line per example: question, gold, prediction, score,
thoughts, actions, observations, full text) go to `trajectories_path` when given. "hotpotqa"
searches each question's 10 distractor-setting paragraphs, "hotpotqa_wiki" the local Wikipedia of
all HotpotQA intro paragraphs.
"""

import functools

from eval.react import fever
from eval.react import gsm8k_tools
from eval.react import hotpotqa

REACT_TASKS = {
    "hotpotqa": functools.partial(hotpotqa.evaluate, store="distractor"),
    "hotpotqa_wiki": functools.partial(hotpotqa.evaluate, store="wiki"),
    "fever": fever.evaluate,
    "gsm8k_tools": gsm8k_tools.evaluate,
}


def evaluate(task, lm, data_dir, mode, limit=None, trajectories_path=None):
  """REACT_TASKS[task](...); ValueError naming the choices for an unknown task (or mode, raised
  by the task before it reads any data)."""
  if task not in REACT_TASKS:
    raise ValueError(f"unknown ReAct task {task!r}; expected one of {tuple(REACT_TASKS)}")
  return REACT_TASKS[task](lm, data_dir, mode, limit=limit, trajectories_path=trajectories_path)
