"""Few-shot prompts (the shared `prefix` of every episode) per task family and mode.

HotpotQA and FEVER use the prompts shipped with the ReAct code (data dir, react/react_repo/
prompts/): the 6-example HotpotQA set (webthink/webact/cotqa/webqa_simple6) and the 3-example FEVER
set (..._simple3), as the ReAct notebooks do. HotpotQA ReAct and Act get a short tool description
in front (our wording of what the notebook prepends); the FEVER prompts carry their own opening
line. GSM8K has no shipped ReAct prompt: eval/react/prompts/gsm8k_<mode>.txt are our own three
hand-written problems (not from GSM8K), the ReAct / Act files showing Calculate[...] and one
calculator error being recovered from. Mode fireact is zero-shot (the model's chat template,
no examples): its prefix is empty.
"""

import json
import os

from eval import data

_SHIPPED_DIR = "react/react_repo/prompts"
_OWN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prompts")

SHIPPED = {  # family -> mode -> (file under _SHIPPED_DIR, key)
    "hotpotqa": {"react": ("prompts_naive.json", "webthink_simple6"),
                 "act": ("prompts_naive.json", "webact_simple6"),
                 "cot": ("prompts_naive.json", "cotqa_simple6"),
                 "standard": ("prompts_naive.json", "webqa_simple6")},
    "fever": {"react": ("fever.json", "webthink_simple3"),
              "act": ("fever.json", "webact_simple3"),
              "cot": ("fever.json", "cotqa_simple3"),
              "standard": ("fever.json", "webqa_simple3")},
}
SHOTS = {"hotpotqa": 6, "fever": 3, "gsm8k": 3}  # few-shot modes

_WIKI_ACTIONS = """\
(1) Search[entity] opens the Wikipedia page titled entity and shows its first sentences; when no \
page has that title, it lists similar titles to search instead.
(2) Lookup[keyword] shows the next sentence of the open page that contains keyword.
(3) Finish[answer] gives the answer and ends the task.
Examples follow.
"""
INSTRUCTIONS = {
    ("hotpotqa", "react"): "Answer the question in steps. Each step is a Thought about what is "
                           "known and what to do next, an Action, and the Observation the action "
                           "returns. There are three actions:\n" + _WIKI_ACTIONS,
    ("hotpotqa", "act"): "Answer the question in steps. Each step is an Action and the "
                         "Observation it returns. There are three actions:\n" + _WIKI_ACTIONS,
}


def fewshot(root, family, mode):
  """The prefix text: instruction (if any) + examples, ending in a newline."""
  if mode == "fireact":
    return ""
  if family == "gsm8k":
    with open(os.path.join(_OWN_DIR, f"gsm8k_{mode}.txt"), encoding="utf-8") as f:
      return f.read()
  file, key = SHIPPED[family][mode]
  with open(data.path(root, os.path.join(_SHIPPED_DIR, file)), encoding="utf-8") as f:
    examples = json.load(f)[key]
  return INSTRUCTIONS.get((family, mode), "") + examples


def shots(family, mode):
  """Examples in the prefix of `family`'s prompts in `mode`."""
  return 0 if mode == "fireact" else SHOTS[family]
