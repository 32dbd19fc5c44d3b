"""Multiple-choice scoring exactly as lm-evaluation-harness does it, and the runner the tasks share.

A question with k choices is k requests (context, continuation); a task sends the requests of all
its questions in one `lm.loglikelihood` call. With logprob_i the summed log-probability (nats) of
continuation i:
  acc       1 if argmax_i logprob_i == gold
  acc_norm  1 if argmax_i logprob_i / len(choices[i]) == gold. choices[i] is lm-eval's choice string
            (its doc_to_choice, i.e. without the " " target delimiter) and len counts characters:
            lm-eval's acc_norm, not bytes and not tokens.
Ties go to the lowest index (np.argmax, as lm-eval). A task's metric is the mean over questions and
its stderr is lm-eval's `mean_stderr` (eval/api.py):
sample standard deviation (n - 1) / sqrt(n).

Rows: a line that is not a JSON object or lacks a field, a field of the wrong type, or a row whose
text is not in the shape a task recovers its fields from (`MalformedRow`) is skipped and counted in
the result's `skipped`.
`limit` keeps the first N well-formed rows in file order; `total` is every row of the file.
"""

import dataclasses
import time

import numpy as np

from eval import api
from eval import data

NORMALISATION = ("acc: argmax of summed log-likelihood; acc_norm: argmax of log-likelihood / "
                 "characters of the choice string (lm-eval)")


class MalformedRow(ValueError):
  """A row that parses but is not in the shape the task's format expects; skipped and counted."""


@dataclasses.dataclass(frozen=True)
class Example:
  """One question as lm-eval scores it."""
  requests: tuple  # ((context, continuation), ...), one per choice
  choices: tuple  # lm-eval's choice strings; acc_norm divides by their length in characters
  gold: int

  def __post_init__(self):
    if len(self.requests) != len(self.choices) or len(self.choices) < 2:
      raise MalformedRow(f"{len(self.requests)} requests for {len(self.choices)} choices")
    if not all(isinstance(c, str) and c for c in self.choices):
      raise MalformedRow("a choice that is empty (acc_norm would divide by zero) or not a string")
    if not isinstance(self.gold, int) or not 0 <= self.gold < len(self.choices):
      raise MalformedRow(f"gold {self.gold!r} is not an index into {len(self.choices)} choices")


def score(example, logprobs):
  """-> {"acc": 0. or 1., "acc_norm": 0. or 1.} for one question; logprobs: [num_choices]."""
  logprobs = np.asarray(logprobs, dtype=np.float64)
  lengths = np.array([len(c) for c in example.choices], dtype=np.float64)
  return {"acc": float(np.argmax(logprobs) == example.gold),
          "acc_norm": float(np.argmax(logprobs / lengths) == example.gold)}


def score_all(lm, examples, desc):
  """One `lm.loglikelihood` call for every request of `examples` -> per-question `score` dicts."""
  flat = [pair for example in examples for pair in example.requests]
  results = lm.loglikelihood(flat, desc=desc) if flat else []
  if len(results) != len(flat):
    raise ValueError(f"{desc}: the LM returned {len(results)} results for {len(flat)} requests")
  scores, start = [], 0
  for example in examples:
    end = start + len(example.requests)
    scores.append(score(example, [logprob for logprob, _ in results[start:end]]))
    start = end
  return scores


_NO_FEWSHOT_SPLIT = ("the shipped file has no training split to draw lm-eval's few-shot "
                     "examples from")


def check_zero_shot(task, num_shots, why=_NO_FEWSHOT_SPLIT):
  """ValueError unless num_shots is None or 0."""
  if num_shots:
    raise ValueError(f"{task}: only 0-shot is supported (num_shots={num_shots}): {why}")


def read_examples(file, to_example, required, limit=None):
  """-> (examples, total rows, skipped rows) of a JSONL file; the first `limit` examples kept."""
  rows, skipped = data.read_jsonl(file, required=required)
  total = len(rows) + skipped
  examples = []
  for row in rows:
    try:
      examples.append(to_example(row))
    except (ValueError, TypeError, AttributeError):  # MalformedRow, or a field of the wrong type
      skipped += 1
  return examples[:limit] if limit is not None else examples, total, skipped


def evaluate(task, lm, data_dir, relative_path, to_example, *, required, limit=None,
             num_shots=None, metrics=("acc", "acc_norm"), normalisation=NORMALISATION):
  """Scores a 0-shot multiple-choice JSONL file -> `eval.api.result(...)`."""
  start = time.perf_counter()
  check_zero_shot(task, num_shots)
  file = data.path(data_dir, relative_path)
  examples, total, skipped = read_examples(file, to_example, required, limit)
  means, stderrs = api.summarise(score_all(lm, examples, desc=task), metrics)
  return api.result(task, means, stderr=stderrs, samples=len(examples), total=total,
                    skipped=skipped, shots=0, data_file=file, normalisation=normalisation,
                    seconds=time.perf_counter() - start)
