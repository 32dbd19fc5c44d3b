"""GSM8K (test) with the calculate[expression] tool; accuracy of the number in the final answer
against the number after "####" (compared as decimals, so 18 == 18.0 == "$18").

Prompts are our own (eval/react/prompts/gsm8k_<mode>.txt, 3 problems). `limit` takes the first N
problems in file order; a row without a "####" number is skipped and counted. Up to 8 actions:
the prompts need at most 5 (one a calculator error), and most GSM8K solutions have 2 to 8 steps.
"""

from eval import data
from eval.react import agent
from eval.react import prompts
from eval.react import runner
from eval.react import scoring
from eval.react import tools

MAX_STEPS = 8
DATA_FILE = "benchmarks/gsm8k/test.jsonl"


def evaluate(lm, data_dir, mode, limit=None, trajectories_path=None):
  """eval.api.result for GSM8K with metric acc; task "gsm8k_tools"."""
  runner.check_mode(mode)
  template = runner.chat_template(lm, mode)
  file = data.path(data_dir, DATA_FILE)
  with open(file, encoding="utf-8") as f:
    total = sum(1 for line in f if line.strip())
  rows, skipped = data.read_jsonl(file, ("question", "answer"), limit)
  good = [(r, scoring.gsm8k_gold(r["answer"])) for r in rows if isinstance(r["answer"], str)]
  good = [(r, gold) for r, gold in good if gold is not None]
  skipped += len(rows) - len(good)
  calculator = tools.calculator_tools() if mode in agent.TOOL_MODES else {}
  episodes = [agent.Episode(r["question"], gold, mode=mode, tools=calculator,
                            score=scoring.score_gsm8k, max_steps=MAX_STEPS, example_id=i,
                            template=template)
              for i, (r, gold) in enumerate(good)]
  return runner.evaluate(
      "gsm8k_tools", lm, prompts.fewshot(data_dir, "gsm8k", mode), episodes, ("acc",),
      mode=mode, trajectories_path=trajectories_path, total=total, skipped=skipped,
      shots=prompts.shots("gsm8k", mode), data_file=DATA_FILE,
      normalisation="numeric match: last number of the answer (commas and $ dropped) == the "
                    "number after ####, as decimals",
      extra=dict(max_steps=MAX_STEPS))
