"""HotpotQA (dev, distractor questions) with the search / lookup tools; EM and F1.

  store="distractor"  each question searches only its own 10 context paragraphs
  store="wiki"        every question searches the local Wikipedia of 28,341 intro paragraphs
                      (closer to the paper, which searched live Wikipedia)

`limit` takes the first N questions in file order (part01, part02, part03), not the paper's
random 500; malformed rows are skipped and counted. Standard and CoT use no tools (no store is
built). Up to 7 actions per question, as in the paper. Mode fireact is FireAct's zero-shot chat
format, for models fine-tuned on its trajectories (eval/react/agent.py).
"""

import time

from eval.react import agent
from eval.react import prompts
from eval.react import runner
from eval.react import scoring
from eval.react import stores
from eval.react import tools

MAX_STEPS = 7
STORES = ("distractor", "wiki")
DATA_FILE = "react/hotpotqa/hotpotqa_dev_distractor.partNN-of-03.jsonl"


def evaluate(lm, data_dir, mode, limit=None, store="distractor", trajectories_path=None):
  """eval.api.result for HotpotQA with metrics em, f1; task "hotpotqa" or "hotpotqa_wiki"."""
  runner.check_mode(mode)
  template = runner.chat_template(lm, mode)
  if store not in STORES:
    raise ValueError(f"unknown HotpotQA store {store!r}; expected one of {STORES}")
  rows, skipped, total = stores.read_parts(data_dir, stores.HOTPOTQA_FILES,
                                           ("question", "answer", "context"), limit)
  good = [r for r in rows if _well_formed(r)]
  skipped += len(rows) - len(good)
  start = time.perf_counter()
  uses_tools = mode in agent.TOOL_MODES
  wiki = stores.wiki_store(data_dir) if uses_tools and store == "wiki" else None
  episodes = []
  for row in good:
    browser = None
    if uses_tools:
      browser = tools.Browser(wiki if wiki is not None else stores.distractor_store(row))
    episodes.append(agent.Episode(
        row["question"], row["answer"], mode=mode, tools=browser.tools() if browser else {},
        score=scoring.score_hotpotqa, max_steps=MAX_STEPS, example_id=row.get("_id"),
        template=template))
  build_seconds = time.perf_counter() - start
  return runner.evaluate(
      "hotpotqa" if store == "distractor" else "hotpotqa_wiki", lm,
      prompts.fewshot(data_dir, "hotpotqa", mode), episodes, ("em", "f1"), mode=mode,
      trajectories_path=trajectories_path, total=total, skipped=skipped,
      shots=prompts.shots("hotpotqa", mode), data_file=DATA_FILE,
      normalisation="SQuAD answer normalisation (lower-case; punctuation and a/an/the removed; "
                    "whitespace collapsed); F1 over tokens, 0 on a yes/no/noanswer mismatch",
      extra=dict(store=store if uses_tools else None, max_steps=MAX_STEPS,
                 build_seconds=round(build_seconds, 2)))


def _well_formed(row):
  """A context of [title, [sentences]] pairs and string question/answer."""
  context = row["context"]
  return (isinstance(row["question"], str) and isinstance(row["answer"], str) and
          isinstance(context, list) and
          all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and
              isinstance(c[1], list) and all(isinstance(s, str) for s in c[1]) for c in context))
