"""OpenBookQA (Mihaylov et al. 2018) as lm-eval's `openbookqa`: 0-shot on the test split, acc and
acc_norm.

lm-eval (openbookqa/openbookqa.yaml): context "{question_stem}" (nothing added), continuation
" {choice}" for each choice text; acc_norm divides by len(choice).

Shipped: llm-foundry's commonsense_reasoning/openbook_qa.jsonl (500 rows, the full test split) as
{"query": question_stem, "choices": [texts], "gold": i}: the query is the bare question stem, so
the lm-eval prompt is the query as it is.
"""

from eval.tasks import multiple_choice

FILE = "benchmarks/llm_foundry_icl/commonsense_reasoning/openbook_qa.jsonl"
_REQUIRED = ("query", "choices", "gold")


def example(row):
  """One llm-foundry row -> `multiple_choice.Example` in lm-eval's format."""
  if not isinstance(row["query"], str):
    raise multiple_choice.MalformedRow("query is not a string")
  choices = tuple(row["choices"])
  return multiple_choice.Example(tuple((row["query"], " " + c) for c in choices), choices,
                                 row["gold"])


def evaluate(lm, data_dir, limit=None, num_shots=None):
  return multiple_choice.evaluate("openbookqa", lm, data_dir, FILE, example, required=_REQUIRED,
                                  limit=limit, num_shots=num_shots)
