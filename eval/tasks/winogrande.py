"""WinoGrande (Sakaguchi et al. 2019) as lm-eval's `winogrande` (winogrande_xl): 0-shot on the
validation split, acc with partial scoring.

lm-eval (winogrande/preprocess_winogrande.py): the blank "_" of the sentence splits it; each option
makes its own context sentence[:blank] + option, and the shared rest is scored under each:
continuation " " + sentence[blank + 1:].strip(). The higher log-likelihood of the same continuation
wins; only acc is reported (lm-eval's choices here are the contexts, so acc_norm would not mean
anything).

Shipped: llm-foundry's language_understanding/winogrande.jsonl (1,267 rows, the full validation
split) as {"context_options": [sentence[:blank] + option1, ... + option2], "continuation":
sentence[blank + 1:].strip(), "gold": answer - 1}: exactly lm-eval's contexts and target, so the
requests are (context_option, " " + continuation).
"""

from eval.tasks import multiple_choice

FILE = "benchmarks/llm_foundry_icl/language_understanding/winogrande.jsonl"
_REQUIRED = ("context_options", "continuation", "gold")


def example(row):
  """One llm-foundry row -> `multiple_choice.Example` in lm-eval's format."""
  contexts = tuple(row["context_options"])
  if not isinstance(row["continuation"], str):
    raise multiple_choice.MalformedRow("continuation is not a string")
  continuation = " " + row["continuation"]
  return multiple_choice.Example(tuple((c, continuation) for c in contexts), contexts, row["gold"])


def evaluate(lm, data_dir, limit=None, num_shots=None):
  return multiple_choice.evaluate(
      "winogrande", lm, data_dir, FILE, example, required=_REQUIRED, limit=limit,
      num_shots=num_shots, metrics=("acc",),
      normalisation="acc: argmax of the shared continuation's log-likelihood (partial scoring)")
