"""Bits per byte of held-out text: lm-eval's loglikelihood_rolling metrics on our own texts.

Each document is scored whole by `lm.loglikelihood_rolling` (the LM windows it at its max length);
sums run over all documents, as lm-eval's weighted aggregations do:
  bpb              -sum(logprob) / ln 2 / sum(UTF-8 bytes)   (lm-eval's bits_per_byte)
  byte_perplexity  exp(-sum(logprob) / sum(UTF-8 bytes))
  word_perplexity  exp(-sum(logprob) / sum(words)), words = len(re.split(r"\\s+", document))
No stderr (lm-eval gives none for these). `limit` keeps the first N documents.

Documents: the held-out tail of each file, cut as training holds text out
(input_pipeline/sources.split_heldout with training/config.py's data.eval_fraction): the last 10%
from a line start. One document per file, as the training pipeline reads a .txt file.
  bpb_tinyshakespeare  pretrain_text/tinyshakespeare/input.txt (public domain): exactly the held-out
                       text of configs/llama.py:shakespeare
  bpb_wiki             pretrain_text/llamafactory_demo/wiki_demo.txt: its last Wikipedia articles
  bpb                  both documents
"""

import math
import re
import time

from training import config as config_lib
from eval import api
from eval import data
from eval.tasks import multiple_choice
from input_pipeline import sources

FILES = {
    "bpb_tinyshakespeare": ("pretrain_text/tinyshakespeare/input.txt",),
    "bpb_wiki": ("pretrain_text/llamafactory_demo/wiki_demo.txt",),
}
FILES["bpb"] = FILES["bpb_tinyshakespeare"] + FILES["bpb_wiki"]


def heldout_text(file, eval_fraction=None):
  """The held-out tail of a text file; eval_fraction defaults to training/config.py's."""
  if eval_fraction is None:
    eval_fraction = config_lib.base_config().data.eval_fraction
  with open(file, encoding="utf-8", errors="replace") as f:
    return sources.split_heldout(f.read(), eval_fraction)[1]


def summarise(documents, logprobs):
  """-> metrics over documents [str] and their rolling log-likelihoods [float] (nats)."""
  nats = -sum(logprobs)
  num_bytes = sum(len(d.encode("utf-8")) for d in documents)
  num_words = sum(len(re.split(r"\s+", d)) for d in documents)
  if not num_bytes:
    return {"bpb": float("nan"), "byte_perplexity": float("nan"),
            "word_perplexity": float("nan")}
  return {"bpb": nats / math.log(2) / num_bytes, "byte_perplexity": math.exp(nats / num_bytes),
          "word_perplexity": math.exp(nats / num_words)}


def evaluate(task, lm, data_dir, limit=None, num_shots=None):
  """task: "bpb", "bpb_tinyshakespeare" or "bpb_wiki"."""
  start = time.perf_counter()
  multiple_choice.check_zero_shot(task, num_shots, why="bits per byte scores plain text")
  files = [data.path(data_dir, relative) for relative in FILES[task]]
  documents = [heldout_text(f) for f in files]
  documents = documents[:limit] if limit is not None else documents
  logprobs = lm.loglikelihood_rolling(documents, desc=task) if documents else []
  return api.result(
      task, summarise(documents, logprobs), samples=len(documents), total=len(files), shots=0,
      data_file=", ".join(FILES[task]),
      normalisation="bpb: -sum log-likelihood (nats) / ln 2 / UTF-8 bytes of the held-out tail",
      seconds=time.perf_counter() - start,
      extra={"bytes": sum(len(d.encode("utf-8")) for d in documents)})
