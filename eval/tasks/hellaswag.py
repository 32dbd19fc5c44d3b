"""HellaSwag (Zellers et al. 2019) as lm-eval's `hellaswag`: 0-shot, acc and acc_norm.

Data: benchmarks/hellaswag/hellaswag_val_subset1000.jsonl, a random 1,000 of the 10,042 validation
rows in the original format (activity_label, ctx_a, ctx_b, endings, label). lm-eval scores all
10,042, so these numbers are a sample of its number: compare them within their stderr.

Prompt (lm-eval hellaswag/utils.py, process_docs):
  context       preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())
  continuation  " " + preprocess(ending), one per ending
  acc_norm divides by len(preprocess(ending))
preprocess: strip; " [title]" -> ". "; drop every "[...]" (WikiHow markup); one pass of "  " -> " ".
str.capitalize() also lower-cases the rest of ctx_b, as lm-eval's does.
"""

import re

from eval.tasks import multiple_choice

FILE = "benchmarks/hellaswag/hellaswag_val_subset1000.jsonl"
_REQUIRED = ("activity_label", "ctx_a", "ctx_b", "endings", "label")


def preprocess(text):
  text = text.strip()
  text = text.replace(" [title]", ". ")
  text = re.sub(r"\[.*?\]", "", text)
  return text.replace("  ", " ")


def example(row):
  """One original-format row -> `multiple_choice.Example`."""
  context = preprocess(row["activity_label"] + ": " + row["ctx_a"] + " " +
                       row["ctx_b"].capitalize())
  choices = tuple(preprocess(ending) for ending in row["endings"])
  return multiple_choice.Example(tuple((context, " " + c) for c in choices), choices,
                                 int(row["label"]))


def evaluate(lm, data_dir, limit=None, num_shots=None):
  return multiple_choice.evaluate("hellaswag", lm, data_dir, FILE, example, required=_REQUIRED,
                                  limit=limit, num_shots=num_shots)
