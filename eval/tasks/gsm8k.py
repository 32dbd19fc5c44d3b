"""GSM8K (Cobbe et al. 2021) as lm-eval's `gsm8k` (version 3): 5-shot, greedy, exact match.

Data: benchmarks/gsm8k/test.jsonl (1,319 questions) and train.jsonl (7,473, the few-shot pool),
openai/grade-school-math's files: the rows and order of lm-eval's `gsm8k` "main" splits.

Prompt (lm-eval gsm8k/gsm8k.yaml): every few-shot example is
"Question: {question}\\nAnswer: {answer}\\n\\n" (the full train answer, <<calculator>> marks and
"#### n" included), then "Question: {question}\\nAnswer:". Greedy decoding, at most 256 new tokens,
stopped at "Question:", "</s>" or "<|im_end|>" (version 3 no longer stops at "\\n\\n").

Few-shot examples, exactly lm-eval's: its default sampler draws k train rows for EACH test question
from one random.Random(1234) (the default fewshot_random_seed), question by question in file order:
random.Random(1234).sample(train, 5) is test question 0's shots (0-based train lines 6374, 3610,
957, 61, 742), the next call question 1's, and so on; `limit` keeps the first N questions and so
the same draws. Task `gsm8k` does that; every prompt then carries its own shots, so the LM
prefills each whole. Task `gsm8k_shared_prefix` gives every question question 0's shots as one
`prefix` that the LM prefills once: much cheaper, not lm-eval's number (same protocol, other shots).

Scoring (lm-eval's two filters, then exact_match with ignore_case and regexes_to_ignore):
  exact_match_strict    first match of "#### (\\-?[0-9\\.\\,]+)", its group
  exact_match_flexible  last match of "(-?[$0-9.,]{2,})|(-?[0-9]+)", its non-empty group
  no match -> "[invalid]". Prediction and the full reference answer both drop "," and "$", all
  text through "#### " and one final "." (in that order), are lower-cased, then compared.
stderr: lm-eval's mean_stderr (eval/api.py).
"""

import random
import re
import time

from eval import api
from eval import data

TEST_FILE = "benchmarks/gsm8k/test.jsonl"
TRAIN_FILE = "benchmarks/gsm8k/train.jsonl"
DEFAULT_SHOTS = 5
SEED = 1234  # lm-eval's fewshot_random_seed default
STOP = ("Question:", "</s>", "<|im_end|>")
MAX_NEW_TOKENS = 256
STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")
INVALID = "[invalid]"


def question_text(row):
  return f"Question: {row['question']}\nAnswer:"


def shots_text(shots):
  return "".join(f"{question_text(row)} {row['answer']}\n\n" for row in shots)


def requests(row, shots=()):
  """-> [prompt]: the shots' worked examples, then the question; what `lm.generate` continues."""
  return [shots_text(shots) + question_text(row)]


def fewshot_draws(train_rows, num_questions, num_shots, seed=SEED):
  """lm-eval's shots: [question][shot] train rows, one seeded stream drawn question by question."""
  rnd = random.Random(seed)
  return [rnd.sample(train_rows, num_shots) for _ in range(num_questions)]


def _extract(regex, text, group_select):
  matches = regex.findall(text)
  if not matches:
    return INVALID
  match = matches[group_select]
  if isinstance(match, tuple):  # several groups: the first non-empty one
    match = next(m for m in match if m)
  return match.strip()


def extract_strict(completion):
  return _extract(STRICT, completion, 0)


def extract_flexible(completion):
  return _extract(FLEXIBLE, completion, -1)


def normalise(text):
  """lm-eval exact_match's regexes_to_ignore (in order), then ignore_case."""
  for pattern in IGNORE:
    text = re.sub(pattern, "", text)
  return text.lower()


def exact_match(prediction, reference):
  return float(normalise(prediction) == normalise(reference))


def score(completion, answer):
  """-> {"exact_match_strict": 0./1., "exact_match_flexible": 0./1.}; answer: the full reference."""
  return {"exact_match_strict": exact_match(extract_strict(completion), answer),
          "exact_match_flexible": exact_match(extract_flexible(completion), answer)}


def _read(file):
  """-> (rows, total, skipped): rows with string "question" and "answer"."""
  rows, skipped = data.read_jsonl(file, required=("question", "answer"))
  good = [r for r in rows if isinstance(r["question"], str) and isinstance(r["answer"], str)]
  return good, len(rows) + skipped, skipped + len(rows) - len(good)


def evaluate(lm, data_dir, limit=None, num_shots=None, shared_prefix=False):
  task = "gsm8k_shared_prefix" if shared_prefix else "gsm8k"
  start = time.perf_counter()
  num_shots = DEFAULT_SHOTS if num_shots is None else num_shots
  test_file = data.path(data_dir, TEST_FILE)
  rows, total, skipped = _read(test_file)
  rows = rows[:limit] if limit is not None else rows
  train_rows, _, train_skipped = _read(data.path(data_dir, TRAIN_FILE)) if num_shots else ([], 0, 0)
  if num_shots > len(train_rows):
    raise ValueError(f"gsm8k: num_shots={num_shots} but {TRAIN_FILE} has {len(train_rows)} rows")
  draws = fewshot_draws(train_rows, max(len(rows), 1), num_shots)
  if shared_prefix:
    prefix, prompts = shots_text(draws[0]), [question_text(r) for r in rows]
  else:
    prefix = ""
    prompts = [requests(r, shots)[0] for r, shots in zip(rows, draws)]
  completions = (lm.generate(prompts, list(STOP), MAX_NEW_TOKENS, prefix=prefix, desc=task)
                 if prompts else [])
  scores = [score(c, r["answer"]) for c, r in zip(completions, rows)]
  metrics, stderr = api.summarise(scores, ("exact_match_strict",
                                                       "exact_match_flexible"))
  index = {id(r): i for i, r in enumerate(train_rows)}
  return api.result(
      task, metrics, stderr=stderr, samples=len(rows), total=total, skipped=skipped,
      shots=num_shots, data_file=test_file,
      normalisation="exact match after lm-eval's strict-match / flexible-extract filters, "
                    "dropping ',' '$' 'text through #### ' a final '.', case-insensitive",
      seconds=time.perf_counter() - start,
      # 0-based rows of train.jsonl's well-formed lines: which examples question 0 (or, with
      # shared_prefix, every question) was shown
      extra={"first_question_shots": [index[id(r)] for r in draws[0]],
             "fewshot_skipped": train_skipped})
