"""PIQA (Bisk et al. 2020) as lm-eval's `piqa`: 0-shot on the validation split, acc and acc_norm.

lm-eval (piqa/piqa.yaml): context "Question: {goal}\\nAnswer:", continuation " {sol1}" / " {sol2}";
acc_norm divides by len(sol).

Shipped: llm-foundry's commonsense_reasoning/piqa.jsonl (1,838 rows, the full validation split) as
{"query": "Question: {goal}\\n", "choices": [sol1, sol2], "gold": label}. Every query starts with
"Question: " and ends with exactly one "\\n", so the lm-eval prompt is query + "Answer:" and the
choices are the solutions as they are. A query without that prefix or final newline is skipped
and counted.
"""

from eval.tasks import multiple_choice

FILE = "benchmarks/llm_foundry_icl/commonsense_reasoning/piqa.jsonl"
_REQUIRED = ("query", "choices", "gold")


def example(row):
  """One llm-foundry row -> `multiple_choice.Example` in lm-eval's format."""
  query = row["query"]
  if not (query.startswith("Question: ") and query.endswith("\n")):
    raise multiple_choice.MalformedRow("query is not 'Question: {goal}\\n'")
  context = query + "Answer:"
  choices = tuple(row["choices"])
  return multiple_choice.Example(tuple((context, " " + c) for c in choices), choices, row["gold"])


def evaluate(lm, data_dir, limit=None, num_shots=None):
  return multiple_choice.evaluate("piqa", lm, data_dir, FILE, example, required=_REQUIRED,
                                  limit=limit, num_shots=num_shots)
