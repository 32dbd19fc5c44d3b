"""Benchmark tasks by name: each is a data file, lm-evaluation-harness's prompt format and a scorer.

  from eval import data, tasks
  result = tasks.get("arc_easy").evaluate(lm, data.data_dir(), limit=100)

`evaluate(lm, data_dir, limit=None, num_shots=None)` returns an `eval.api.result(...)` record.
`limit` scores the first N well-formed examples in file order (MMLU: per subject), `num_shots=None`
is the task's standard (5 for mmlu and gsm8k, else 0). Every task sends all its requests to the LM
in one call (`lm.loglikelihood`, `lm.generate` or `lm.loglikelihood_rolling`) so the LM can batch
them by length. Each task's module documents the lm-eval format it reproduces, what it recovered
from the shipped file and where the file makes lm-eval's exact prompt impossible; each with rows
exposes `requests(row, ...)`, what the LM is asked for one example, for checking formats.
"""

import dataclasses
import functools
from collections.abc import Callable

from eval.tasks import arc
from eval.tasks import boolq
from eval.tasks import bpb
from eval.tasks import copa
from eval.tasks import gsm8k
from eval.tasks import hellaswag
from eval.tasks import lambada
from eval.tasks import mmlu
from eval.tasks import openbookqa
from eval.tasks import piqa
from eval.tasks import winogrande


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  evaluate: Callable  # (lm, data_dir, limit=None, num_shots=None) -> eval.api.result(...) dict


TASKS = {t.name: t for t in (
    Task("hellaswag", hellaswag.evaluate),
    Task("arc_easy", functools.partial(arc.evaluate, "arc_easy")),
    Task("arc_challenge", functools.partial(arc.evaluate, "arc_challenge")),
    Task("piqa", piqa.evaluate),
    Task("winogrande", winogrande.evaluate),
    Task("boolq", boolq.evaluate),
    Task("openbookqa", openbookqa.evaluate),
    Task("copa", copa.evaluate),
    Task("lambada_openai", lambada.evaluate),
    Task("mmlu", mmlu.evaluate),
    Task("gsm8k", gsm8k.evaluate),
    Task("gsm8k_shared_prefix", functools.partial(gsm8k.evaluate, shared_prefix=True)),
    Task("bpb", functools.partial(bpb.evaluate, "bpb")),
    Task("bpb_tinyshakespeare", functools.partial(bpb.evaluate, "bpb_tinyshakespeare")),
    Task("bpb_wiki", functools.partial(bpb.evaluate, "bpb_wiki")),
)}


def get(name):
  """The task called `name`, or ValueError listing the known names."""
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
  return TASKS[name]
