"""Preference pairs for reward models and DPO: (conversation so far, chosen reply, rejected reply).

Readers, each for one shipped format (../shared/data/preference, see its MANIFEST):
  hh        Anthropic HH-RLHF JSONL(.gz): {"chosen", "rejected"} as whole dialogues
            "\\n\\nHuman: ...\\n\\nAssistant: ..."; the prompt is the dialogue up to the last
            "\\n\\nAssistant:", which both sides must share.
  dpo       LLaMA-Factory's DPO JSON: {"conversations": [{"from": "human"|"gpt"|"system", "value"}],
            "chosen": {"value"}, "rejected": {"value"}}.
  alpaca_eval  AlpacaEval annotations: {"instruction", "output_1", "output_2", "preference"}; the
            judge's preferred output is chosen ("1" or "2"); ties ("0") are skipped.
A pair whose chosen and rejected replies are identical teaches nothing and would give a zero
DPO/Bradley-Terry gradient: it is skipped and counted, as are rows missing fields.
Held-out split by a hash of the prompt, so one prompt never lands on both sides.
"""

import collections
import json

from input_pipeline import sft

_HUMAN, _ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


class Pair(collections.namedtuple("Pair", "messages chosen rejected")):
  """messages: ((role, content), ...) ending with a user turn; chosen/rejected: reply texts."""


def _hh_dialogue(text):
  """'\\n\\nHuman: a\\n\\nAssistant: b ...' -> [(role, content)]."""
  turns, rest = [], text
  while rest:
    starts = [(rest.find(marker), marker) for marker in (_HUMAN, _ASSISTANT) if rest.find(marker) >= 0]
    if not starts or min(starts)[0] != 0:
      raise sft.BadRow("dialogue does not start with a Human or Assistant turn")
    _, marker = min(starts)
    rest = rest[len(marker):]
    ends = [i for i in (rest.find(_HUMAN), rest.find(_ASSISTANT)) if i >= 0]
    end = min(ends) if ends else len(rest)
    turns.append(("user" if marker == _HUMAN else "assistant", rest[:end].strip()))
    rest = rest[end:]
  return turns


def _from_hh(row):
  if not isinstance(row.get("chosen"), str) or not isinstance(row.get("rejected"), str):
    raise sft.BadRow("missing chosen or rejected")
  chosen, rejected = _hh_dialogue(row["chosen"]), _hh_dialogue(row["rejected"])
  if chosen[-1][0] != "assistant" or rejected[-1][0] != "assistant":
    raise sft.BadRow("does not end with an Assistant turn")
  if chosen[:-1] != rejected[:-1]:
    raise sft.BadRow("chosen and rejected dialogues differ before the last reply")
  return Pair(tuple(chosen[:-1]), chosen[-1][1], rejected[-1][1])


def _from_dpo(row):
  try:
    messages = tuple((_ROLES[m["from"]], m["value"]) for m in row["conversations"])
    chosen, rejected = row["chosen"]["value"], row["rejected"]["value"]
  except (KeyError, TypeError):
    raise sft.BadRow("missing conversations, chosen or rejected") from None
  return Pair(messages, chosen, rejected)


def _from_alpaca_eval(row):
  preference = str(row.get("preference"))
  if preference not in ("1", "2", "1.0", "2.0"):
    raise sft.BadRow("tie or no preference")
  if not all(isinstance(row.get(k), str) for k in ("instruction", "output_1", "output_2")):
    raise sft.BadRow("missing instruction or outputs")
  first, second = row["output_1"], row["output_2"]
  chosen, rejected = (first, second) if preference.startswith("1") else (second, first)
  return Pair((("user", row["instruction"]),), chosen, rejected)


READERS = {"hh": _from_hh, "dpo": _from_dpo, "alpaca_eval": _from_alpaca_eval}


def read_pairs(path, fmt):
  """(pairs, skipped Counter {reason: n}) of one file in `fmt` (see READERS)."""
  if fmt not in READERS:
    raise ValueError(f"unknown preference format {fmt!r}; expected one of {sorted(READERS)}")
  rows, skipped = sft.read_rows(path)
  pairs = []
  for row in rows:
    try:
      pair = READERS[fmt](row if isinstance(row, dict) else {})
      if not pair.chosen.strip() or not pair.rejected.strip():
        raise sft.BadRow("empty reply")
      if pair.chosen.strip() == pair.rejected.strip():
        raise sft.BadRow("identical chosen and rejected")
      if not pair.messages or pair.messages[-1][0] != "user":
        raise sft.BadRow("prompt does not end with a user turn")
      pairs.append(pair)
    except sft.BadRow as e:
      skipped[str(e)] += 1
  if not pairs:
    raise ValueError(f"{path}: none of its {len(rows)} rows is a usable {fmt} pair ({dict(skipped)})")
  return pairs, skipped


def is_held_out(pair, fraction):
  """Deterministic held-out membership by the prompt's hash (same prompt, same side)."""
  return sft.is_held_out(json.dumps(pair.messages), fraction)


def tokenize_pair(pair, tokenizer, template, max_length):
  """((ids, weights) of prompt + chosen, (ids, weights) of prompt + rejected); weights mark the
  reply's tokens (their sum is a reply's log-probability; the last one carries the reward)."""
  out = []
  for reply in (pair.chosen, pair.rejected):
    row = {"messages": [{"role": r, "content": c} for r, c in pair.messages] +
                       [{"role": "assistant", "content": reply}]}
    out.append(sft.tokenize(row, tokenizer, template, max_length, last_turn_only=True))
  return tuple(out)
