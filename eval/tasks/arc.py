"""ARC-Easy and ARC-Challenge (Clark et al. 2018) as lm-eval's `arc_easy` and `arc_challenge`:
0-shot on the test splits, acc and acc_norm.

lm-eval (arc/arc_easy.yaml): context "Question: {question}\\nAnswer:", continuation " {choice}" for
each choice text; acc_norm divides by len(choice).

Shipped: llm-foundry's ICL files world_knowledge/arc_easy.jsonl (2,376 rows) and arc_challenge.jsonl
(1,172 rows), the full test splits, as {"query": "Question: {question}", "choices": [texts],
"gold": i}. Every query starts with "Question: " and stops after the question (no "\\nAnswer:"),
and the choices are the bare option texts, so the lm-eval prompt is query + "\\nAnswer:" with the
choices as they are. A query without the "Question: " prefix is skipped and counted.
Cannot be checked from the file: every row has exactly 4 choices; lm-eval scores however many
options an upstream question has, so if llm-foundry changed the few 3- or 5-option questions of
ARC, those rows differ from lm-eval's.
"""

from eval.tasks import multiple_choice

FILES = {
    "arc_easy": "benchmarks/llm_foundry_icl/world_knowledge/arc_easy.jsonl",
    "arc_challenge": "benchmarks/llm_foundry_icl/world_knowledge/arc_challenge.jsonl",
}
_REQUIRED = ("query", "choices", "gold")
_PREFIX = "Question: "


def example(row):
  """One llm-foundry row -> `multiple_choice.Example` in lm-eval's format."""
  if not row["query"].startswith(_PREFIX):
    raise multiple_choice.MalformedRow(f"query does not start with {_PREFIX!r}")
  context = row["query"] + "\nAnswer:"
  choices = tuple(row["choices"])
  return multiple_choice.Example(tuple((context, " " + c) for c in choices), choices, row["gold"])


def evaluate(task, lm, data_dir, limit=None, num_shots=None):
  """task: "arc_easy" or "arc_challenge"."""
  return multiple_choice.evaluate(task, lm, data_dir, FILES[task], example, required=_REQUIRED,
                                  limit=limit, num_shots=num_shots)
