"""MMLU (Hendrycks et al. 2021) as lm-eval's `mmlu` (mmlu/default), 5-shot by default, acc.

Data: benchmarks/mmlu/{dev,test}/{subject}_{split}.csv, the original hendrycks CSVs (no header:
question, A, B, C, D, answer letter); 57 subjects, 14,042 test questions, 5 dev rows per subject.

Prompt (lm-eval mmlu/default/_default_template_yaml, fewshot sampler first_n from dev):
  "The following are multiple choice questions (with answers) about {subject, _ -> space}.\\n\\n"
  + for each of the first k dev rows in file order: question_text(row) + " " + letter + "\\n\\n"
  + question_text(test row), with question_text(row) =
  "{question.strip()}\\nA. {A}\\nB. {B}\\nC. {C}\\nD. {D}\\nAnswer:"
  continuations " A", " B", " C", " D"; only acc (acc_norm equals it: every choice is 1 character).
lm-eval's default is 0-shot unless run with --num_fewshot 5; 5 is the MMLU paper's protocol and
this task's default. num_shots may be 0..5.

Metrics: acc = mean over all scored questions (micro; what lm-eval's `mmlu` group reports, its
groups weigh subjects by size); acc_macro = mean of the 57 per-subject accuracies. Per-subject
accuracies and counts are in the result's "subjects". acc's stderr is the sample stderr over all
questions; lm-eval pools per-subject variances through its four category groups instead, a
slightly different number. `limit` keeps the first N questions of every subject
(lm-eval's --limit is per subtask too). A CSV row without 6 fields or with an answer other than
A-D is skipped and counted.
"""

import csv
import glob
import os
import time

from eval import api
from eval import data
from eval.tasks import multiple_choice

TEST_DIR, DEV_DIR = "benchmarks/mmlu/test", "benchmarks/mmlu/dev"
LETTERS = ("A", "B", "C", "D")
DEFAULT_SHOTS = 5


def read_csv(file):
  """-> (rows, skipped): [question, A, B, C, D, answer letter] rows of a hendrycks CSV."""
  rows, skipped = [], 0
  with open(file, newline="", encoding="utf-8") as f:
    for row in csv.reader(f):
      if len(row) == 6 and row[5] in LETTERS:
        rows.append(row)
      else:
        skipped += 1
  return rows, skipped


def description(subject):
  return ("The following are multiple choice questions (with answers) about "
          f"{subject.replace('_', ' ')}.\n\n")


def question_text(row):
  question, a, b, c, d, _ = row
  return f"{question.strip()}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"


def fewshot_prefix(subject, dev_rows):
  """The description and the worked dev examples that precede every test question."""
  return description(subject) + "".join(f"{question_text(r)} {r[5]}\n\n" for r in dev_rows)


def example(row, prefix):
  """One test row -> `multiple_choice.Example`; prefix: `fewshot_prefix(...)`."""
  context = prefix + question_text(row)
  return multiple_choice.Example(tuple((context, " " + letter) for letter in LETTERS), LETTERS,
                                 LETTERS.index(row[5]))


def _subjects(data_dir):
  test_dir = data.path(data_dir, TEST_DIR)
  files = sorted(glob.glob(os.path.join(test_dir, "*_test.csv")))
  if not files:
    raise FileNotFoundError(f"no *_test.csv files in {test_dir} (data dir {data_dir})")
  return [(os.path.basename(f)[:-len("_test.csv")], f) for f in files]


def _dev_rows(data_dir, subject, num_shots):
  if not num_shots:
    return []
  file = data.path(data_dir, os.path.join(DEV_DIR, f"{subject}_dev.csv"))
  rows, _ = read_csv(file)
  if len(rows) < num_shots:
    raise ValueError(f"mmlu: {file} has {len(rows)} well-formed rows; {num_shots} shots asked")
  return rows[:num_shots]


def evaluate(lm, data_dir, limit=None, num_shots=None):
  start = time.perf_counter()
  num_shots = DEFAULT_SHOTS if num_shots is None else num_shots
  if not 0 <= num_shots <= 5:
    raise ValueError(f"mmlu: num_shots={num_shots}; the dev split has 5 examples per subject")
  examples, subject_of, total, skipped = [], [], 0, 0
  for subject, file in _subjects(data_dir):
    rows, bad = read_csv(file)
    total, skipped = total + len(rows) + bad, skipped + bad
    prefix = fewshot_prefix(subject, _dev_rows(data_dir, subject, num_shots))
    rows = rows[:limit] if limit is not None else rows
    examples += [example(row, prefix) for row in rows]
    subject_of += [subject] * len(rows)
  scores = multiple_choice.score_all(lm, examples, desc="mmlu")
  by_subject = {}
  for subject, s in zip(subject_of, scores):
    by_subject.setdefault(subject, []).append(s["acc"])
  subjects = {k: {"acc": sum(v) / len(v), "samples": len(v)} for k, v in by_subject.items()}
  metrics, stderr = api.summarise(scores, ("acc",))
  metrics["acc_macro"] = (sum(s["acc"] for s in subjects.values()) / len(subjects)
                          if subjects else float("nan"))
  return api.result("mmlu", metrics, stderr=stderr, samples=len(examples), total=total,
                    skipped=skipped, shots=num_shots, data_file=data.path(data_dir, TEST_DIR),
                    normalisation="acc: argmax of log-likelihood of ' A'..' D' (micro: all "
                                  "questions); acc_macro: mean of per-subject acc",
                    seconds=time.perf_counter() - start, extra={"subjects": subjects})
