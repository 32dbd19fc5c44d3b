"""LAMBADA (Paperno et al. 2016), OpenAI's detokenised test set, as lm-eval's `lambada_openai`:
0-shot, acc and perplexity of the last word.

lm-eval (lambada/lambada_openai.yaml): context = the text up to its last " " (text.split(" ")[:-1]
joined), continuation = " " + the last space-separated word. One request per passage:
  acc         mean of is_greedy: greedy decoding would produce exactly the last word's tokens
  perplexity  exp(-mean over passages of the last word's summed log-likelihood)
acc's stderr is lm-eval's mean_stderr. lm-eval bootstraps perplexity's stderr (100,000 resamples);
here it is the delta method, perplexity * stderr of the mean log-likelihood: the same quantity to
first order, without the resampling time.

Shipped: llm-foundry's language_understanding/lambada_openai.jsonl (5,153 rows, the full test set)
as {"context", "continuation"}: the same split at the last space (no context ends in whitespace;
7 last "words" hold a newline, as text.split(" ") leaves them), so the text is
context + " " + continuation and the request is (context, " " + continuation), exactly lm-eval's.
"""

import math
import time

from eval import api
from eval import data
from eval.tasks import multiple_choice

FILE = "benchmarks/llm_foundry_icl/language_understanding/lambada_openai.jsonl"
_REQUIRED = ("context", "continuation")


def requests(row):
  """-> [(context, " " + last word)]."""
  if not (isinstance(row["context"], str) and isinstance(row["continuation"], str)
          and row["continuation"]):
    raise multiple_choice.MalformedRow("context and continuation must be strings")
  return [(row["context"], " " + row["continuation"])]


def summarise(results):
  """results: [(logprob, is_greedy)] per passage -> (metrics, stderr)."""
  n = len(results)
  if not n:
    return {"acc": float("nan"), "perplexity": float("nan")}, {}
  logprobs = [logprob for logprob, _ in results]
  greedy = [float(is_greedy) for _, is_greedy in results]
  perplexity = math.exp(-sum(logprobs) / n)
  return ({"acc": sum(greedy) / n, "perplexity": perplexity},
          {"acc": api.mean_stderr(greedy),
           "perplexity": perplexity * api.mean_stderr(logprobs)})


def evaluate(lm, data_dir, limit=None, num_shots=None):
  start = time.perf_counter()
  multiple_choice.check_zero_shot("lambada_openai", num_shots)
  file = data.path(data_dir, FILE)
  rows, skipped = data.read_jsonl(file, required=_REQUIRED)
  total = len(rows) + skipped
  pairs = []
  for row in rows:
    try:
      pairs.extend(requests(row))
    except multiple_choice.MalformedRow:
      skipped += 1
  pairs = pairs[:limit] if limit is not None else pairs
  metrics, stderr = summarise(lm.loglikelihood(pairs, desc="lambada_openai") if pairs else [])
  return api.result("lambada_openai", metrics, stderr=stderr, samples=len(pairs), total=total,
                    skipped=skipped, shots=0, data_file=file,
                    normalisation="acc: last word is the greedy continuation; perplexity: "
                                  "exp(-mean last-word log-likelihood in nats)",
                    seconds=time.perf_counter() - start)
