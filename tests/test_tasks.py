"""eval/tasks: lm-eval's scorers on hand-built cases, each task's prompt on a real first row of the
shipped file (expected strings written from lm-eval's templates), the registry, missing files,
malformed rows and `limit`. A deterministic fake LM stands in for the model."""

import csv
import json
import math
import os
import random
import re

import pytest

from eval import api
from eval import data
from eval import tasks
from eval.tasks import arc
from eval.tasks import boolq
from eval.tasks import bpb
from eval.tasks import copa
from eval.tasks import gsm8k
from eval.tasks import hellaswag
from eval.tasks import lambada
from eval.tasks import mmlu
from eval.tasks import multiple_choice
from eval.tasks import openbookqa
from eval.tasks import piqa
from eval.tasks import winogrande
from input_pipeline import sources


class FakeLM:
  """Log-probability from `table` for known (context, continuation) pairs, else -len(continuation);
  1 nat per UTF-8 byte for rolling log-likelihoods; completions from `complete(prefix + prompt)`.
  Records every call, so tests can check that a task asks once."""

  name = "fake"

  def __init__(self, table=None, complete=lambda prompt: ""):
    self.table, self.complete, self.calls = dict(table or {}), complete, []

  def loglikelihood(self, pairs, desc=""):
    self.calls.append(("loglikelihood", list(pairs), desc))
    return [self.table.get(pair, (-float(len(pair[1])), False)) for pair in pairs]

  def loglikelihood_rolling(self, texts, desc=""):
    self.calls.append(("loglikelihood_rolling", list(texts), desc))
    return [-float(len(t.encode("utf-8"))) for t in texts]

  def generate(self, prompts, stop, max_new_tokens, prefix="", desc=""):
    self.calls.append(("generate", list(prompts), {"stop": list(stop), "prefix": prefix,
                                                   "max_new_tokens": max_new_tokens, "desc": desc}))
    return [self.complete(prefix + p) for p in prompts]


@pytest.fixture(scope="module")
def root():
  try:
    found = data.data_dir()
  except FileNotFoundError as e:
    pytest.skip(f"no shared data dir: {e}")
  if not os.path.isdir(os.path.join(found, "benchmarks")):
    pytest.skip(f"data dir {found} has no benchmarks/")
  return found


def _first_row(root, relative):
  with open(os.path.join(root, relative), encoding="utf-8") as f:
    return json.loads(f.readline())


def _requests(task_module, row):
  """A row's [(context, continuation)], one per choice, as the task sends them."""
  return list(task_module.example(row).requests)


def _write_jsonl(path, lines):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


# ---------------------------------------------------------------- scorers
def test_acc_and_acc_norm_differ_and_acc_norm_divides_by_choice_not_continuation():
  # acc picks the short choice; per character the long one wins.
  example = multiple_choice.Example(((".", " a"), (".", " bbbbbbbbbb")), ("a", "bbbbbbbbbb"), 1)
  assert multiple_choice.score(example, [-2.0, -5.0]) == {"acc": 0.0, "acc_norm": 1.0}
  # -3/2 < -5.9/4 picks choice 1; dividing by the continuation (with its " ", 3 and 5 characters)
  # would pick choice 0: lm-eval divides by len(choice).
  example = multiple_choice.Example(((".", " ab"), (".", " abcd")), ("ab", "abcd"), 1)
  assert multiple_choice.score(example, [-3.0, -5.9])["acc_norm"] == 1.0
  # Ties go to the first choice, as np.argmax.
  example = multiple_choice.Example(((".", " x"), (".", " y")), ("x", "y"), 1)
  assert multiple_choice.score(example, [-1.0, -1.0]) == {"acc": 0.0, "acc_norm": 0.0}


def test_mean_stderr_is_the_sample_stderr_of_the_mean():
  # mean 0.75; sample variance (3 * 0.25^2 + 0.75^2) / 3 = 0.25; sqrt(0.25 / 4) = 0.25
  assert api.mean_stderr([1.0, 0.0, 1.0, 1.0]) == pytest.approx(0.25)
  assert api.mean_stderr([1.0, 0.0]) == pytest.approx(0.5)
  assert math.isnan(api.mean_stderr([1.0]))


def test_example_rejects_bad_gold_and_empty_choices():
  with pytest.raises(multiple_choice.MalformedRow, match="gold"):
    multiple_choice.Example(((".", " a"), (".", " b")), ("a", "b"), 2)
  with pytest.raises(multiple_choice.MalformedRow, match="empty"):
    multiple_choice.Example(((".", " "), (".", " b")), ("", "b"), 0)


@pytest.mark.parametrize("completion, strict, flexible", [
    ("She has 1,234 left.\n#### 1,234", "1,234", "1,234"),
    ("It costs $5.", "[invalid]", "$5."),
    ("The answer is 42.", "[invalid]", "42."),
    ("I do not know.", "[invalid]", "[invalid]"),
    ("3 apples and 4 pears make 7", "[invalid]", "7"),  # flexible: the last number
    ("#### -12\n#### 13", "-12", "13"),  # strict: the first "####"
])
def test_gsm8k_extraction(completion, strict, flexible):
  assert gsm8k.extract_strict(completion) == strict
  assert gsm8k.extract_flexible(completion) == flexible


def test_gsm8k_exact_match_normalisation():
  reference = ("She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n"
               "#### 1,018")
  assert gsm8k.normalise(reference) == "1018"  # ',' dropped, everything through '#### ' dropped
  for prediction in ("1,018", "$1018", "1018.", "$1,018."):
    assert gsm8k.exact_match(prediction, reference) == 1.0
  assert gsm8k.exact_match("1018.0", reference) == 0.0  # strings, not numbers, are compared
  assert gsm8k.exact_match("[invalid]", reference) == 0.0
  assert gsm8k.exact_match("ABC", "abc") == 1.0  # ignore_case
  assert gsm8k.score("so #### 1,018", reference) == {"exact_match_strict": 1.0,
                                                     "exact_match_flexible": 1.0}
  assert gsm8k.score("The answer is $1018.", reference) == {"exact_match_strict": 0.0,
                                                            "exact_match_flexible": 1.0}


def test_lambada_and_bpb_summaries():
  metrics, stderr = lambada.summarise([(-1.0, True), (-3.0, False)])
  assert metrics == {"acc": 0.5, "perplexity": pytest.approx(math.exp(2.0))}
  assert stderr["acc"] == pytest.approx(0.5)
  assert stderr["perplexity"] == pytest.approx(math.exp(2.0) * 1.0)  # delta method
  documents = ["naïve café", "ab"]  # 12 + 2 UTF-8 bytes; 2 + 1 words
  metrics = bpb.summarise(documents, [-7.0, -7.0])
  assert metrics["bpb"] == pytest.approx(14.0 / math.log(2) / 14)
  assert metrics["byte_perplexity"] == pytest.approx(math.e)
  assert metrics["word_perplexity"] == pytest.approx(math.exp(14.0 / 3))


# ---------------------------------------------------------------- prompt formats
def test_hellaswag_prompt(root):
  row = _first_row(root, hellaswag.FILE)
  context = ("Pole vault: Pole vault is a sport where you run with a pole and stop and swing your "
             "body. A few women")
  assert _requests(hellaswag, row) == [
      (context, " go down a rock and stop."), (context, " watch from around a pole vault."),
      (context, " are in the wading pool."),
      (context, " are in the gym practicing to do this pole vault, trying to do their best.")]


def test_hellaswag_preprocess_drops_wikihow_markup():
  row = {"activity_label": "Home and Garden", "ctx_a": "[header] How to x [title] Do y.",
         "ctx_b": "tHEN", "endings": ["[step] a  b.", "c", "d", "e"], "label": "2"}
  example = hellaswag.example(row)
  # " [title]" -> ". ", "[header]" dropped, "  " -> " "; capitalize() lower-cases the rest.
  assert example.requests[0] == ("Home and Garden: How to x. Do y. Then", "  a b.")
  assert example.choices[0] == " a b." and example.gold == 2


def test_arc_prompts(root):
  easy = _requests(arc, _first_row(root, arc.FILES["arc_easy"]))
  question = ("Question: Which statement best explains why photosynthesis is the foundation of "
              "most food webs?\nAnswer:")
  assert easy[0] == (question, " Sunlight is the source of energy for nearly all ecosystems.")
  assert [c for _, c in easy[1:]] == [" Most ecosystems are found on land instead of in water.",
                                      " Carbon dioxide is more available than other gases.",
                                      " The producers in all ecosystems are plants."]
  challenge = _requests(arc, _first_row(root, arc.FILES["arc_challenge"]))
  assert challenge[2] == (
      ("Question: An astronomer observes that a planet rotates faster after a meteorite impact. "
       "Which is the most likely effect of this increase in rotation?\nAnswer:"),
      " Planetary days will become shorter.")


def test_piqa_prompt(root):
  context = "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:"
  sol = ("Provide the guinea pig with a cage full of a few inches of bedding made of ripped {} "
         "you will also need to supply it with a water bottle and a food dish.")
  assert _requests(piqa, _first_row(root, piqa.FILE)) == [
      (context, " " + sol.format("paper strips,")), (context, " " + sol.format("jeans material,"))]


def test_winogrande_prompt_scores_the_shared_rest_under_each_option(root):
  assert _requests(winogrande, _first_row(root, winogrande.FILE)) == [
      ("Sarah was a much better surgeon than Maria so Sarah", " always got the easier cases."),
      ("Sarah was a much better surgeon than Maria so Maria", " always got the easier cases.")]


def test_boolq_prompt(root):
  (context, no), (same, yes) = _requests(boolq, _first_row(root, boolq.FILE))
  assert context == same and (no, yes) == (" no", " yes")
  assert context.startswith("All biomass goes through at least some of these steps: it needs to "
                            "be grown, collected, dried, fermented, distilled, and burned.")
  assert context.endswith("producing ethanol from corn uses much less petroleum than producing "
                          "gasoline.\nQuestion: does ethanol take more energy make that "
                          "produces?\nAnswer:")
  assert "Passage:" not in context


def test_openbookqa_prompt(root):
  context = ("A person wants to start saving money so that they can afford a nice vacation at the "
             "end of the year. After looking over their budget and expenses, they decide the best "
             "way to save money is to")
  assert _requests(openbookqa, _first_row(root, openbookqa.FILE)) == [
      (context, " make more phone calls"), (context, " quit eating lunch out"),
      (context, " buy less with monopoly money"), (context, " have lunch with friends")]


def test_copa_prompt_is_lm_evals_including_its_two_spaces(root):
  assert _requests(copa, _first_row(root, copa.FILE)) == [
      ("The man turned on the faucet therefore", "  the toilet filled with water."),
      ("The man turned on the faucet therefore", "  water flowed from the spout.")]
  example = copa.example({"query": "My body cast a shadow over the grass, because",
                          "choices": ["The sun was rising.", "the grass was cut."], "gold": 0})
  assert example.requests[0] == ("My body cast a shadow over the grass because",
                                 "  the sun was rising.")
  assert example.choices == (" the sun was rising.", " the grass was cut.")


def test_lambada_prompt(root):
  row = _first_row(root, lambada.FILE)
  [(context, continuation)] = lambada.requests(row)
  assert continuation == " signs"
  assert context.endswith("his mouth curved in a confident grin, I don't care about")
  assert context + continuation == row["context"] + " " + row["continuation"]


def test_mmlu_prompt(root):
  def read(split):
    file = os.path.join(root, f"benchmarks/mmlu/{split}/abstract_algebra_{split}.csv")
    return mmlu.read_csv(file)[0]
  test_rows, dev_rows = read("test"), read("dev")
  one_shot = mmlu.fewshot_prefix("abstract_algebra", dev_rows[:1])
  [(context, a), _, _, (_, d)] = mmlu.example(test_rows[0], one_shot).requests
  assert (a, d) == (" A", " D")
  assert context == (
      "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
      "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\n"
      "Answer: B\n\n"
      "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
      "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:")
  five_shots = mmlu.fewshot_prefix("abstract_algebra", dev_rows)
  five_shot = mmlu.example(test_rows[0], five_shots).requests[0][0]
  assert five_shot.count("\nAnswer: ") == 5 and five_shot.endswith("D. 6\nAnswer:")
  # question.strip(), choices as they are
  assert mmlu.question_text(["  What? ", "x ", "y", "z", "w", "C"]) == (
      "What?\nA. x \nB. y\nC. z\nD. w\nAnswer:")


def test_gsm8k_first_question_gets_lm_evals_seeded_shots(root):
  def read(name):
    return data.read_jsonl(os.path.join(root, "benchmarks/gsm8k", name))[0]
  train, test = read("train.jsonl"), read("test.jsonl")
  draws = gsm8k.fewshot_draws(train, 2, 5)
  # lm-eval's prompt for test question 0 (random.Random(1234), 5 shots) starts with these rows.
  assert [train.index(r) for r in draws[0]] == [6374, 3610, 957, 61, 742]
  [prompt] = gsm8k.requests(test[0], draws[0])
  assert prompt.startswith(
      "Question: Jen and Tyler are gymnasts practicing flips. Jen is practicing the triple-flip "
      "while Tyler is practicing the double-flip.")
  assert ("so Tyler did 24 / 2 = <<24/2=12>>12 double-flips.\n#### 12\n\nQuestion: Four people in "
          "a law firm are planning a party.") in prompt
  assert prompt.endswith("#### 84\n\nQuestion: Janet’s ducks lay 16 eggs per day. She eats three "
                         "for breakfast every morning and bakes muffins for her friends every day "
                         "with four. She sells the remainder at the farmers' market daily for $2 "
                         "per fresh duck egg. How much in dollars does she make every day at the "
                         "farmers' market?\nAnswer:")
  assert draws[1] != draws[0]  # one stream, a new draw per question


def test_bpb_text_is_the_training_heldout_tail(root):
  file = os.path.join(root, bpb.FILES["bpb_tinyshakespeare"][0])
  with open(file, encoding="utf-8") as f:
    text = f.read()
  tail = bpb.heldout_text(file)
  assert tail == sources.split_heldout(text, 0.1)[1] and text.endswith(tail)
  assert 0.09 < len(tail) / len(text) < 0.11 and text[-len(tail) - 1] == "\n"


# ---------------------------------------------------------------- registry, files, rows, limit
def test_unknown_task_names_the_known_ones():
  with pytest.raises(ValueError, match=r"unknown task 'nope'; known: .*arc_easy.*mmlu"):
    tasks.get("nope")
  assert tasks.get("arc_easy").name == "arc_easy"


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_missing_data_file_is_named(name, tmp_path):
  with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
    tasks.get(name).evaluate(FakeLM(), str(tmp_path))


def test_zero_shot_tasks_refuse_shots(root):
  with pytest.raises(ValueError, match="only 0-shot"):
    tasks.get("piqa").evaluate(FakeLM(), root, num_shots=5)


def test_malformed_rows_are_skipped_and_counted_and_scores_follow_the_table(tmp_path):
  good = {"query": "Question: 2+2?", "choices": ["4", "5"], "gold": 0}
  other = {"query": "Question: 3+3?", "choices": ["7", "6"], "gold": 1}
  _write_jsonl(tmp_path / arc.FILES["arc_easy"], [
      json.dumps(good), "{broken json", json.dumps({"query": "Question: x", "choices": ["a", "b"]}),
      json.dumps({**good, "query": "What is 2+2?"}), json.dumps({**good, "gold": 5}),
      json.dumps(other)])
  lm = FakeLM({("Question: 2+2?\nAnswer:", " 4"): (-1.0, True),
               ("Question: 2+2?\nAnswer:", " 5"): (-2.0, False),
               ("Question: 3+3?\nAnswer:", " 7"): (-1.0, False),  # wrong by acc and acc_norm
               ("Question: 3+3?\nAnswer:", " 6"): (-2.0, False)})
  result = tasks.get("arc_easy").evaluate(lm, str(tmp_path))
  assert (result["samples"], result["skipped"], result["total"]) == (2, 4, 6)
  assert result["metrics"] == {"acc": 0.5, "acc_norm": 0.5}
  assert result["stderr"]["acc"] == pytest.approx(0.5)
  assert [c[0] for c in lm.calls] == ["loglikelihood"] and len(lm.calls[0][1]) == 4
  assert result["shots"] == 0 and result["data_file"].endswith("arc_easy.jsonl")


def test_mmlu_csv_rows_shots_and_per_subject_metrics(tmp_path):
  def write(split, subject, rows):
    path = tmp_path / "benchmarks/mmlu" / split / f"{subject}_{split}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
      csv.writer(f).writerows(rows)
  for subject in ("alpha", "beta_gamma"):
    write("dev", subject, [[f"d{i}", "a", "b", "c", "d", "A"] for i in range(5)])
  write("test", "alpha", [["q1", "1", "2", "3", "4", "B"], ["short", "row"],
                          ["q2", "1", "2", "3", "4", "E"], ["q3", "1", "2", "3", "4", "A"]])
  write("test", "beta_gamma", [["q4", "1", "2", "3", "4", "C"]])
  # By -len(continuation) every letter ties, so " A" wins: q3 is right, q1 and q4 wrong.
  lm = FakeLM()
  result = tasks.get("mmlu").evaluate(lm, str(tmp_path))
  assert (result["samples"], result["skipped"], result["total"], result["shots"]) == (3, 2, 5, 5)
  assert result["metrics"]["acc"] == pytest.approx(1 / 3)  # micro: 1 of 3 questions
  assert result["metrics"]["acc_macro"] == pytest.approx(0.25)  # (1/2 + 0/1) / 2
  assert result["subjects"] == {"alpha": {"acc": 0.5, "samples": 2},
                                "beta_gamma": {"acc": 0.0, "samples": 1}}
  [(kind, pairs, desc)] = lm.calls
  assert (kind, len(pairs), desc) == ("loglikelihood", 12, "mmlu")
  assert pairs[-1][0].startswith("The following are multiple choice questions (with answers) "
                                 "about beta gamma.\n\nd0\nA. a")
  limited = tasks.get("mmlu").evaluate(FakeLM(), str(tmp_path), limit=1, num_shots=0)
  assert limited["samples"] == 2 and limited["shots"] == 0  # the first question of each subject


def test_gsm8k_generates_once_and_scores_both_filters(tmp_path):
  train = [{"question": f"t{i}?", "answer": f"w{i}\n#### {i}"} for i in range(6)]
  test = [{"question": "Q1?", "answer": "r\n#### 5"}, {"question": "Q2?", "answer": "r\n#### 8"},
          {"question": "Q3?", "answer": "r\n#### 9"}]
  _write_jsonl(tmp_path / gsm8k.TRAIN_FILE, [json.dumps(r) for r in train])
  _write_jsonl(tmp_path / gsm8k.TEST_FILE, [json.dumps(test[0]), "not json",
                                            json.dumps(test[1]), json.dumps(test[2])])
  answers = {"Q1?": " so #### 5", "Q2?": " The answer is 8.", "Q3?": " I give up"}

  def complete(prompt):
    return answers[prompt.rsplit("Question: ", 1)[1].split("\n")[0]]

  lm = FakeLM(complete=complete)
  result = tasks.get("gsm8k").evaluate(lm, str(tmp_path), limit=2)
  assert (result["samples"], result["skipped"], result["total"], result["shots"]) == (2, 1, 4, 5)
  assert result["metrics"] == {"exact_match_strict": 0.5, "exact_match_flexible": 1.0}
  [(kind, prompts, kwargs)] = lm.calls
  assert kind == "generate" and kwargs["prefix"] == ""
  assert kwargs["stop"] == ["Question:", "</s>", "<|im_end|>"] and kwargs["max_new_tokens"] == 256
  rnd = random.Random(1234)
  for prompt, row in zip(prompts, test):
    shots = gsm8k.shots_text(rnd.sample(train, 5))
    assert prompt == shots + f"Question: {row['question']}\nAnswer:"
  first_shots = random.Random(1234).sample(train, 5)
  assert result["first_question_shots"] == [train.index(r) for r in first_shots]

  shared = FakeLM(complete=complete)
  result = tasks.get("gsm8k_shared_prefix").evaluate(shared, str(tmp_path))
  [(_, prompts, kwargs)] = shared.calls
  assert prompts == ["Question: Q1?\nAnswer:", "Question: Q2?\nAnswer:", "Question: Q3?\nAnswer:"]
  assert kwargs["prefix"] == gsm8k.shots_text(random.Random(1234).sample(train, 5))
  assert result["metrics"]["exact_match_flexible"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("name, limit, choices", [
    ("hellaswag", 7, 4), ("winogrande", 3, 2), ("lambada_openai", 5, 1), ("boolq", 4, 2),
    ("copa", 2, 2)])
def test_limit_takes_the_first_examples_in_one_call(root, name, limit, choices):
  lm = FakeLM()
  result = tasks.get(name).evaluate(lm, root, limit=limit)
  assert result["samples"] == limit and result["total"] > limit and result["skipped"] == 0
  [(kind, pairs, desc)] = lm.calls
  assert kind == "loglikelihood" and desc == name
  assert len(pairs) == limit * choices


def test_bpb_scores_every_document_once(root):
  lm = FakeLM()
  result = tasks.get("bpb").evaluate(lm, root)
  assert result["samples"] == result["total"] == 2
  assert result["metrics"]["bpb"] == pytest.approx(1 / math.log(2))  # 1 nat per byte
  [(kind, texts, _)] = lm.calls
  assert kind == "loglikelihood_rolling" and result["bytes"] == sum(len(t.encode()) for t in texts)
  assert tasks.get("bpb_wiki").evaluate(FakeLM(), root, limit=0)["samples"] == 0
