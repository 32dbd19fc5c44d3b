"""COPA (Roemmele et al. 2011) as lm-eval's `copa` (SuperGLUE): 0-shot on the validation split, acc.

lm-eval (super_glue/copa/utils.py and default.yaml):
  context       premise.strip()[:-1] + " because" (question "cause") or " therefore" ("effect")
  choices       " " + choice[0].lower() + choice[1:]   (doc_to_choice adds the space)
  continuation  " " + choice, the target delimiter in front of the choice: TWO spaces before the
                lower-cased alternative. That is what lm-eval 0.4 scores (its v0.3 harness had one);
                kept here so the numbers match, see CONTINUATION_PREFIX.
Only acc is reported.

Shipped: llm-foundry's commonsense_reasoning/copa.jsonl (100 rows, the full validation split) as
{"query": premise[:-1] + ", because" / ", therefore", "choices": [alternatives with the first letter
already lower-cased], "gold": label}. llm-foundry put a comma before the connective that lm-eval
does not have; every query ends with ", because" or ", therefore", so the lm-eval context is the
query with that comma removed. The original premise's final character (the period lm-eval drops)
is not in the file and not needed.
"""

from eval.tasks import multiple_choice

FILE = "benchmarks/llm_foundry_icl/commonsense_reasoning/copa.jsonl"
_REQUIRED = ("query", "choices", "gold")
_CONNECTIVES = ("because", "therefore")
CONTINUATION_PREFIX = " "  # lm-eval's target delimiter, in front of a choice that starts with " "


def _convert_choice(choice):
  return choice[0].lower() + choice[1:]


def example(row):
  """One llm-foundry row -> `multiple_choice.Example` in lm-eval's format."""
  premise, _, connective = row["query"].rpartition(", ")
  if connective not in _CONNECTIVES or not premise:
    raise multiple_choice.MalformedRow("query does not end with ', because' or ', therefore'")
  context = f"{premise} {connective}"
  choices = tuple(" " + _convert_choice(c) for c in row["choices"])
  return multiple_choice.Example(tuple((context, CONTINUATION_PREFIX + c) for c in choices),
                                 choices, row["gold"])


def evaluate(lm, data_dir, limit=None, num_shots=None):
  return multiple_choice.evaluate("copa", lm, data_dir, FILE, example, required=_REQUIRED,
                                  limit=limit, num_shots=num_shots, metrics=("acc",),
                                  normalisation="acc: argmax of summed log-likelihood")
