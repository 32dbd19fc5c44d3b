"""What tasks and the ReAct agent ask of a language model, and what a task returns (`result`, with
means and lm-eval's standard errors from `summarise`).

The model side (`eval/lm.py`, class `LM`) implements these on our Flax decoder; tests use small
fakes with the same methods.

  lm.name                                   str, e.g. "SmolLM2-135M-Instruct (GGUF Q4_1)"
  lm.template                               the chat template the model answers in ("chatml",
         "alpaca"; input_pipeline/sft.py) or None (plain text); read by the fireact agent mode.
  lm.loglikelihood(pairs, desc="")          pairs: list of (context, continuation) strings.
      -> list of (logprob, is_greedy): the summed log-probability (nats) of the continuation's
         tokens given the context, and whether greedy decoding would produce exactly them.
         Tokenised as lm-evaluation-harness does: encode(context + continuation) split at
         len(encode(context)), trailing spaces of the context moved onto the continuation.
  lm.loglikelihood_rolling(texts, desc="")  -> list of float: log-likelihood (nats) of each whole
         text (windows of the model's max length), for perplexity and bits-per-byte.
  lm.generate(prompts, stop, max_new_tokens, prefix="", desc="")
      -> list of str: greedy completions of prefix + prompt, cut before the first stop string.
         `prefix` (few-shot examples) is encoded and prefilled once for all prompts.
  lm.run_episodes(prefix, episodes, desc="")
      Multi-turn batched decoding for agents. Each episode is an object with
        start() -> Turn                      first text to append after the shared prefix
        step(completion: str) -> Turn | None completion of the last turn (stop string removed);
                                             return the next text to append, or None when done
        abort(reason: str)                   the context window is full; the episode is over
      Many episodes decode together; a finished episode's row is refilled with the next one.
"""

import math


from models.engine import Turn  # noqa: F401  (the episode interface's Turn, defined with its engine)

def result(task, metrics, *, samples, total, shots, data_file, normalisation, seconds,
           stderr=None, mode=None, skipped=0, extra=None):
  """The record every task returns; reports print each number with these facts beside it.

  metrics: {name: float}; samples: examples scored; total: examples in the shipped file;
  skipped: malformed rows skipped; normalisation: how scores are normalised (e.g. "acc_norm:
  log-likelihood / continuation characters"); mode: Standard/CoT/Act/ReAct for agent tasks.
  """
  return dict(task=task, mode=mode, metrics=dict(metrics), stderr=dict(stderr or {}),
              samples=samples, total=total, skipped=skipped, shots=shots, data_file=data_file,
              normalisation=normalisation, seconds=round(seconds, 2), **(extra or {}))


def mean_stderr(values):
  """lm-eval's standard error of a mean: sample std (n - 1) / sqrt(n); NaN for fewer than 2."""
  n = len(values)
  if n < 2:
    return float("nan")
  mean = sum(values) / n
  return math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1) / n)


def summarise(scores, metrics):
  """-> (means, stderrs): {metric: float} over per-example score dicts (bools count as 0/1); NaN
  when empty (and stderr NaN for fewer than 2)."""
  means, stderrs = {}, {}
  for metric in metrics:
    values = [float(s[metric]) for s in scores]
    means[metric] = sum(values) / len(values) if values else float("nan")
    stderrs[metric] = mean_stderr(values)
  return means, stderrs
