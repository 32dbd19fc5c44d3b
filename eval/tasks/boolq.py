"""BoolQ (Clark et al. 2019) as lm-eval's `boolq` (SuperGLUE): 0-shot on the validation split, acc.

lm-eval (super_glue/boolq/default.yaml): context "{passage}\\nQuestion: {question}?\\nAnswer:",
continuations " no" / " yes", gold = label (1 = yes); only acc is reported.

Shipped: llm-foundry's reading_comprehension/boolq.jsonl (3,270 rows, the full validation split)
as {"query": "Passage: {passage}\\nQuestion: {question}?", "choices": ["no", "yes"], "gold": label}.
The query is split at its last "\\nQuestion: " (one passage contains that text itself); the question
keeps its lower case and llm-foundry's "?" is the one lm-eval appends, so the prompt is
passage + "\\nQuestion: " + question + "?\\nAnswer:".
Not recoverable: lm-eval reads SuperGLUE's BoolQ, whose passages start with the Wikipedia title,
"Ethanol fuel -- All biomass goes through ..."; the shipped passages are the original BoolQ text
without the "{title} -- " prefix, so every context here lacks those few words.
"""

from eval.tasks import multiple_choice

FILE = "benchmarks/llm_foundry_icl/reading_comprehension/boolq.jsonl"
_REQUIRED = ("query", "choices", "gold")
_PASSAGE, _QUESTION = "Passage: ", "\nQuestion: "
CHOICES = ("no", "yes")


def example(row):
  """One llm-foundry row -> `multiple_choice.Example` in lm-eval's format."""
  query = row["query"]
  if not (query.startswith(_PASSAGE) and _QUESTION in query and query.endswith("?")):
    raise multiple_choice.MalformedRow("query is not 'Passage: ...\\nQuestion: ...?'")
  if tuple(row["choices"]) != CHOICES:
    raise multiple_choice.MalformedRow(f"choices {row['choices']!r} are not {CHOICES}")
  passage, question = query[len(_PASSAGE):].rsplit(_QUESTION, 1)
  context = f"{passage}\nQuestion: {question[:-1]}?\nAnswer:"
  return multiple_choice.Example(tuple((context, " " + c) for c in CHOICES), CHOICES, row["gold"])


def evaluate(lm, data_dir, limit=None, num_shots=None):
  return multiple_choice.evaluate("boolq", lm, data_dir, FILE, example, required=_REQUIRED,
                                  limit=limit, num_shots=num_shots, metrics=("acc",),
                                  normalisation="acc: argmax of summed log-likelihood")
