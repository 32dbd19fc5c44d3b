"""FEVER (paper dev claims) with the search / lookup tools over pages built from the evidence of
all claims (fever_pages.py); accuracy of the predicted label.

The shipped claims are SUPPORTS or REFUTES only (no NOT ENOUGH INFO rows), while the prompts
offer all three labels, so a model answering NOT ENOUGH INFO is always wrong here. `limit` takes
the first N claims in file order; the store still holds the evidence of every claim. Up to 5
actions per claim, as in the paper.
"""

import collections
import time

from eval.react import agent
from eval.react import prompts
from eval.react import runner
from eval.react import scoring
from eval.react import stores
from eval.react import tools

MAX_STEPS = 5
DATA_FILE = "react/fever/fever_dev_with_evidence.partNN-of-02.jsonl"


def evaluate(lm, data_dir, mode, limit=None, trajectories_path=None):
  """eval.api.result for FEVER with metric acc."""
  runner.check_mode(mode)
  template = runner.chat_template(lm, mode)
  rows, skipped, total = stores.read_parts(data_dir, stores.FEVER_FILES, ("claim", "label"), limit)
  start = time.perf_counter()
  store, store_stats = stores.fever_store(data_dir) if mode in agent.TOOL_MODES else (None, None)
  episodes = [
      agent.Episode(row["claim"], row["label"], mode=mode,
                    tools=tools.Browser(store).tools() if store is not None else {},
                    score=scoring.score_fever, max_steps=MAX_STEPS, label="Claim",
                    example_id=row.get("id"), template=template)
      for row in rows]
  build_seconds = time.perf_counter() - start
  return runner.evaluate(
      "fever", lm, prompts.fewshot(data_dir, "fever", mode), episodes, ("acc",), mode=mode,
      trajectories_path=trajectories_path, total=total, skipped=skipped,
      shots=prompts.shots("fever", mode), data_file=DATA_FILE,
      normalisation="label accuracy: SQuAD-normalised predicted label == gold label",
      extra=dict(max_steps=MAX_STEPS, build_seconds=round(build_seconds, 2),
                 gold_labels=dict(collections.Counter(r["label"] for r in rows)),
                 store_pairs=store_stats))
