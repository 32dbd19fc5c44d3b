"""Answer scoring for the ReAct tasks. Each scorer maps (prediction, gold) to {metric: value} with
a boolean "correct" beside the task's metrics, so one trajectory line carries its own score.

  HotpotQA  em, f1: the official HotpotQA / SQuAD normalisation (lower-case, punctuation and the
            articles a/an/the removed, whitespace collapsed); F1 over normalised tokens, and, as in
            the official script, 0 when either side is yes / no / noanswer and they differ.
  FEVER     acc: normalised predicted label == normalised gold label, as the ReAct code scores it
            ("NOT ENOUGH INFO", "Not enough info." and "not enough info" are the same label).
  GSM8K     acc: the number in the finish answer == the number after "####", compared as decimals.
"""

import collections
import decimal
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_YES_NO = ("yes", "no", "noanswer")


def normalize_answer(text):
  """SQuAD normalisation: lower-case, drop punctuation, drop articles, collapse whitespace."""
  text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction, gold):
  return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction, gold):
  """Token F1 of the normalised strings (official HotpotQA rule for yes / no / noanswer)."""
  pred, ref = normalize_answer(prediction), normalize_answer(gold)
  if (pred in _YES_NO or ref in _YES_NO) and pred != ref:
    return 0.0
  pred_tokens, ref_tokens = pred.split(), ref.split()
  common = sum((collections.Counter(pred_tokens) & collections.Counter(ref_tokens)).values())
  if common == 0:
    return 0.0
  precision, recall = common / len(pred_tokens), common / len(ref_tokens)
  return 2 * precision * recall / (precision + recall)


def score_hotpotqa(prediction, gold):
  em = exact_match(prediction, gold)
  return {"correct": bool(em), "em": em, "f1": f1(prediction, gold)}


def score_fever(prediction, gold):
  correct = normalize_answer(prediction) == normalize_answer(gold)
  return {"correct": correct, "acc": float(correct)}


def parse_number(text):
  """The answer's number as a Decimal, or None. "$1,234.50" -> 1234.5; when the text holds more
  than one number ("18 dollars, up from 9") the last one counts, as in lm-eval's flexible GSM8K
  extraction."""
  numbers = _NUMBER.findall(text.replace(",", "").replace("$", ""))
  return decimal.Decimal(numbers[-1]) if numbers else None


def gsm8k_gold(answer):
  """The number after "####" in a GSM8K answer as text ("1,000" -> "1000"), or None."""
  _, sep, final = answer.rpartition("####")
  value = parse_number(final) if sep else None
  return None if value is None else str(value)


def score_gsm8k(prediction, gold):
  """gold: the text from gsm8k_gold; 18 == 18.0 == "$18"."""
  value = parse_number(prediction)
  correct = value is not None and value == parse_number(gold)
  return {"correct": correct, "acc": float(correct)}
