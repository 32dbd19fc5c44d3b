"""The ReAct episode loop and the tasks, driven by a scripted fake model that behaves like the
batched engine: episodes interleaved, completions cut at the turn's stop strings, abort when the
context is full."""

import json
import os

import pytest

from eval import data
from eval import suite
from eval.api import Turn
from eval.react import agent
from eval.react import agent_tasks
from eval.react import docstore
from eval.react import fever_pages
from eval.react import prompts
from eval.react import runner
from eval.react import scoring
from eval.react import stores
from eval.react import tools
from input_pipeline import sft


class FakeLM:
  """run_episodes like the engine: all episodes in flight, one turn each per round.

  policy(episode, context, turn) -> raw completion; it is cut before the first stop string and
  to 4 characters per allowed token. An episode whose context would pass max_chars is aborted.
  """

  name = "fake"

  def __init__(self, policy, max_chars=100_000, template=None):
    self.policy, self.max_chars, self.template = policy, max_chars, template
    self.prefixes, self.turns = [], []

  def run_episodes(self, prefix, episodes, desc=""):
    self.prefixes.append(prefix)
    live = []
    for episode in episodes:
      turn = episode.start()
      live.append((episode, prefix + turn.text, turn))
    while live:
      still = []
      for episode, context, turn in live:
        assert isinstance(turn, Turn)
        self.turns.append(turn)
        completion = self.policy(episode, context, turn)[:4 * turn.max_new_tokens]
        cuts = [completion.find(s) for s in turn.stop if s in completion]
        completion = completion[:min(cuts)] if cuts else completion
        if len(context) + len(completion) > self.max_chars:
          episode.abort("context window full")
          continue
        following = episode.step(completion)
        if following is not None:
          still.append((episode, context + completion + following.text, following))
      live = still


def scripted(completions_by_question):
  """A policy replaying each question's completions in order."""
  queues = {q: list(c) for q, c in completions_by_question.items()}
  return lambda episode, context, turn: queues[episode.question].pop(0)


@pytest.fixture
def store():
  return docstore.DocStore({
      "Milhouse Van Houten": ["Milhouse is a character in The Simpsons.",
                              "Milhouse was named after Richard Nixon."],
      "Richard Nixon": ["Richard Nixon was the 37th president."],
  })


def _episode(store, mode="react", question="Who was Milhouse named after?", max_steps=7, **kw):
  return agent.Episode(question, "Richard Nixon", mode=mode, tools=tools.Browser(store).tools(),
                       score=scoring.score_hotpotqa, max_steps=max_steps, example_id="q1", **kw)


def _run(episodes, policy, **kw):
  lm = FakeLM(policy, **kw)
  lm.run_episodes("PREFIX\n", episodes)
  return lm


# ---- the loop ----------------------------------------------------------------------------------

def test_react_thought_action_observation_finish(store):
  episode = _episode(store)
  lm = _run([episode], scripted({episode.question: [
      " I need to search Milhouse.\nAction 1: Search[Milhouse Van Houten]\nObservation 1: made up",
      " It says a character.\nAction 2: lookup[named after]",
      " So it is Richard Nixon.\nAction 3: Finish[Richard Nixon]\nQuestion: next one"]}))
  t = episode.trajectory
  assert t["text"] == (
      "Question: Who was Milhouse named after?\nThought 1: I need to search Milhouse.\n"
      "Action 1: Search[Milhouse Van Houten]\nObservation 1: Milhouse is a character in The "
      "Simpsons. Milhouse was named after Richard Nixon.\nThought 2: It says a character.\n"
      "Action 2: lookup[named after]\nObservation 2: (Result 1 / 1) Milhouse was named after "
      "Richard Nixon.\nThought 3: So it is Richard Nixon.\nAction 3: Finish[Richard Nixon]")
  assert t["prediction"] == "Richard Nixon" and t["correct"] and t["em"] == 1.0 and t["f1"] == 1.0
  assert t["steps"] == 3 and t["finish_reason"] == "finish" and t["bad_calls"] == 0
  assert t["thoughts"] == ["I need to search Milhouse.", "It says a character.",
                           "So it is Richard Nixon."]
  assert t["actions"][1] == "lookup[named after]"
  assert t["id"] == "q1" and t["gold"] == "Richard Nixon" and t["abort_reason"] is None
  assert all("\nObservation" in turn.stop for turn in lm.turns)
  json.dumps(t)  # one JSONL line


def test_thought_without_action_asks_for_the_action(store):
  episode = _episode(store)
  lm = _run([episode], scripted({episode.question: [
      " I should look for Milhouse.\nThought 2: and more thinking",  # cut at "\nThought"
      " Search[Milhouse Van Houten]",
      " Done.\nAction 2: Finish[Nixon]"]}))
  assert lm.turns[1] == Turn("\nAction 1:", ("\n",), agent.ACTION_TOKENS)
  t = episode.trajectory
  assert t["bad_calls"] == 1 and t["thoughts"][0] == "I should look for Milhouse."
  assert t["actions"] == ["Search[Milhouse Van Houten]", "Finish[Nixon]"]
  assert ("Thought 1: I should look for Milhouse.\nAction 1: Search[Milhouse Van Houten]\n"
          in t["text"])
  assert t["em"] == 0.0 and t["f1"] == pytest.approx(2 / 3)


def test_malformed_and_unknown_actions_become_observations(store):
  episode = _episode(store)
  _run([episode], scripted({episode.question: [
      " Try Google.\nAction 1: Google[Milhouse]",
      " Try without brackets.\nAction 2: search Milhouse",
      " Nothing.\nAction 3:",
      " Finally.\nAction 4: Finish[Richard Nixon]"]}))
  t = episode.trajectory
  valid = "Valid actions are search[entity], lookup[keyword], finish[answer]."
  assert t["observations"][:3] == [f"Invalid action: Google[Milhouse]. {valid}",
                                   f"Invalid action: search Milhouse. {valid}",
                                   f"Invalid action: . {valid}"]
  assert t["steps"] == 4 and t["correct"]


def test_step_limit_forces_an_empty_finish(store):
  episode = _episode(store, max_steps=7)
  lm = _run([episode], lambda e, c, t: " Again.\nAction 9: Search[Richard Nixon]")
  t = episode.trajectory
  assert t["finish_reason"] == "step_limit" and t["prediction"] == "" and not t["correct"]
  assert t["steps"] == 7 and len(lm.turns) == 7
  assert t["text"].endswith("Observation 7: Richard Nixon was the 37th president.")


def test_abort_when_the_context_is_full(store):
  episode = _episode(store)
  _run([episode], lambda e, c, t: " Search.\nAction 1: Search[Milhouse Van Houten]", max_chars=300)
  t = episode.trajectory
  assert t["finish_reason"] == "context_full" and t["abort_reason"] == "context window full"
  assert t["prediction"] == "" and t["em"] == 0.0 and t["steps"] >= 1


def test_act_mode(store):
  episode = _episode(store, mode="act")
  lm = _run([episode], scripted({episode.question: [
      " Search[Richard Nixon]\nObservation 1: invented", " Finish[Richard Nixon]"]}))
  t = episode.trajectory
  assert t["text"] == ("Question: Who was Milhouse named after?\nAction 1: Search[Richard Nixon]\n"
                       "Observation 1: Richard Nixon was the 37th president.\nAction 2: "
                       "Finish[Richard Nixon]")
  assert t["thoughts"] == [] and t["correct"] and lm.turns[0].stop == ("\n",)


def test_standard_and_cot_modes(store):
  standard, cot, lost = (_episode(store, "standard"), _episode(store, "cot", "Q2"),
                         _episode(store, "cot", "Q3"))
  _run([standard, cot, lost], scripted({
      standard.question: [" Richard Nixon\nQuestion: more"],
      "Q2": [" Let's think step by step. So it is Nixon.\nAnswer: Richard Nixon\nQuestion:"],
      "Q3": [" Let's think step by step and never conclude."]}))
  assert standard.trajectory["prediction"] == "Richard Nixon" and standard.trajectory["correct"]
  assert standard.trajectory["text"] == (
      "Question: Who was Milhouse named after?\nAnswer: Richard Nixon")
  assert cot.trajectory["prediction"] == "Richard Nixon" and cot.trajectory["steps"] == 0
  assert lost.trajectory["finish_reason"] == "no_answer" and lost.trajectory["prediction"] == ""


def test_calculator_episode_and_fever_label():
  episode = agent.Episode("Tom pays $20 for $14.50 of things; his change?", "5.5", mode="react",
                          tools=tools.calculator_tools(), score=scoring.score_gsm8k, max_steps=8)
  _run([episode], scripted({episode.question: [
      " Change.\nAction 1: Calculate[20 - 14.5]", " Wrong tool.\nAction 2: Search[x]",
      " So 5.5.\nAction 3: Finish[$5.50]"]}))
  t = episode.trajectory
  assert t["observations"][:2] == [
      "5.5", "Invalid action: Search[x]. Valid actions are calculate[expression], finish[answer]."]
  assert t["correct"] and t["acc"] == 1.0
  claim = agent.Episode("Nixon was a president.", "SUPPORTS", mode="react", tools={},
                        score=scoring.score_fever, max_steps=5, label="Claim")
  assert claim.start().text == "Claim: Nixon was a president.\nThought 1:"
  assert claim.step(" True.\nAction 1: Finish[supports]") is None and claim.trajectory["correct"]


def test_misuse_and_unknown_modes_raise(store):
  episode = _episode(store)
  with pytest.raises(RuntimeError):
    episode.step("early")
  episode.start()
  with pytest.raises(RuntimeError):
    episode.start()
  assert episode.step(" x\nAction 1: Finish[y]") is None
  with pytest.raises(RuntimeError):
    episode.step("late")
  with pytest.raises(RuntimeError):
    episode.abort("late")
  with pytest.raises(ValueError, match="mode 'reflexion'"):
    _episode(store, mode="reflexion")
  with pytest.raises(ValueError, match="unknown ReAct task 'webshop'"):
    agent_tasks.evaluate("webshop", None, "/nowhere", "react")
  with pytest.raises(ValueError, match="unknown ReAct mode 'reflexion'"):
    agent_tasks.evaluate("fever", None, "/nowhere", "reflexion")


def test_fireact_chat_turns(store):
  episode = _episode(store, "fireact", template="chatml")
  lm = _run([episode], scripted({episode.question: [
      "Thought: I need to search Milhouse.\nAction: search[Milhouse Van Houten]\nObservation: made up",
      "Thought: It mentions a name.\nAction: lookup[named after]<|im_end|>\n<|im_start|>user",
      "Thought: So it is Richard Nixon.\nAction: finish[Richard Nixon]"]}))
  t = episode.trajectory
  assert t["text"] == (
      "<|im_start|>user\nWho was Milhouse named after?<|im_end|>\n<|im_start|>assistant\n"
      "Thought: I need to search Milhouse.\nAction: search[Milhouse Van Houten]<|im_end|>\n"
      "<|im_start|>user\nObservation: Milhouse is a character in The Simpsons. Milhouse was named "
      "after Richard Nixon.<|im_end|>\n<|im_start|>assistant\n"
      "Thought: It mentions a name.\nAction: lookup[named after]<|im_end|>\n"
      "<|im_start|>user\nObservation: (Result 1 / 1) Milhouse was named after Richard Nixon."
      "<|im_end|>\n<|im_start|>assistant\n"
      "Thought: So it is Richard Nixon.\nAction: finish[Richard Nixon]")
  assert t["thoughts"] == ["I need to search Milhouse.", "It mentions a name.",
                           "So it is Richard Nixon."]
  assert t["actions"] == ["search[Milhouse Van Houten]", "lookup[named after]",
                          "finish[Richard Nixon]"]
  assert t["mode"] == "fireact" and t["correct"] and t["steps"] == 3 and t["bad_calls"] == 0
  assert all(turn.stop == ("\nObservation", "<|im_end|>") for turn in lm.turns)


def test_fireact_turn_without_action_and_step_limit(store):
  history = [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello.")]
  episode = _episode(store, "fireact", max_steps=2, template="chatml", history=history)
  lm = _run([episode], scripted({episode.question: [
      "Thought 1: It is surely Nixon.", "Thought: Check.\nAction: Search[Richard Nixon]"]}))
  t = episode.trajectory
  assert lm.turns[0].text == sft.prompt_text(history + [("user", episode.question)], "chatml")
  assert t["bad_calls"] == 1 and t["thoughts"] == ["It is surely Nixon.", "Check."]
  assert t["observations"] == [
      "Invalid action: . Valid actions are search[entity], lookup[keyword], finish[answer].",
      "Richard Nixon was the 37th president."]
  assert t["finish_reason"] == "step_limit" and t["prediction"] == "" and len(lm.turns) == 2
  assert t["text"].endswith("Action: Search[Richard Nixon]<|im_end|>\n<|im_start|>user\n"
                            "Observation: Richard Nixon was the 37th president.<|im_end|>\n")


def test_fireact_needs_a_chat_template(store):
  with pytest.raises(ValueError, match="has no chat template"):
    _episode(store, "fireact")
  with pytest.raises(ValueError, match="template 'alpaca', which holds one exchange"):
    _episode(store, "fireact", template="alpaca")
  plain = FakeLM(lambda e, c, t: "")
  with pytest.raises(ValueError, match="model 'fake' has no chat template"):
    agent_tasks.evaluate("hotpotqa", plain, "/nowhere", "fireact")  # before any data is read
  assert suite.parse("hotpotqa/fireact") == ("hotpotqa", "fireact")
  with pytest.raises(ValueError, match="needs a multi-turn chat template"):  # before arc_easy runs
    suite.run(plain, ["arc_easy", "gsm8k_tools/fireact"], "/nowhere")


def test_runner_result_and_trajectories(store, tmp_path):
  episodes = [_episode(store, question=f"Q{i}") for i in range(3)]
  answers = {"Q0": "Richard Nixon", "Q1": "Nixon", "Q2": None}

  def policy(episode, context, turn):
    answer = answers[episode.question]
    return f" Done.\nAction 1: Finish[{answer}]" if answer else " Hm.\nAction 1: Search[Zeppelin]"

  path = tmp_path / "sub" / "t.jsonl"
  result = runner.evaluate("toy", FakeLM(policy), "PREFIX", episodes, ("em", "f1"), mode="react",
                           trajectories_path=str(path), total=10, skipped=1, shots=6,
                           data_file="toy.jsonl", normalisation="squad")
  assert result["metrics"]["em"] == pytest.approx(1 / 3)
  assert result["metrics"]["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
  assert result["samples"] == 3 and result["total"] == 10 and result["skipped"] == 1
  assert result["finish_reasons"] == {"finish": 2, "step_limit": 1}
  assert result["mean_steps"] == pytest.approx((1 + 1 + 7) / 3)
  assert result["episodes_per_minute"] > 0 and result["mode"] == "react"
  lines = [json.loads(line) for line in path.read_text().splitlines()]
  assert [t["question"] for t in lines] == ["Q0", "Q1", "Q2"]


# ---- tasks end to end on real rows -------------------------------------------------------------

def _data_dir():
  try:
    root = data.data_dir()
  except FileNotFoundError:
    return None
  return root if os.path.isdir(os.path.join(root, "react")) else None


needs_data = pytest.mark.skipif(_data_dir() is None, reason="eval data dir not found")


def _search_then_finish(first_title, answer):
  """A policy: search the page named by first_title(episode), then finish with answer(episode)."""
  def policy(episode, context, turn):
    if not episode.actions:
      return f" Search first.\nAction 1: Search[{first_title(episode)}]"
    return f" Done.\nAction 2: Finish[{answer(episode)}]"
  return policy


@needs_data
def test_hotpotqa_distractor_end_to_end(tmp_path):
  root = _data_dir()
  rows, _, _ = stores.read_parts(root, stores.HOTPOTQA_FILES, limit=3)
  titles = {r["question"]: r["supporting_facts"][0][0] for r in rows}
  lm = FakeLM(_search_then_finish(lambda e: titles[e.question], lambda e: e.gold))
  path = tmp_path / "hotpotqa.jsonl"
  result = agent_tasks.REACT_TASKS["hotpotqa"](lm, root, "react", limit=3, trajectories_path=str(path))
  assert result["task"] == "hotpotqa" and result["samples"] == 3 and result["total"] == 1584
  assert result["metrics"] == {"em": 1.0, "f1": 1.0} and result["shots"] == 6
  assert lm.prefixes == [prompts.fewshot(root, "hotpotqa", "react")]
  trajectories = [json.loads(line) for line in path.read_text().splitlines()]
  assert [t["id"] for t in trajectories] == [r["_id"] for r in rows]
  assert not any(t["observations"][0].startswith("Could not find") for t in trajectories)


@needs_data
def test_hotpotqa_wiki_and_standard(tmp_path):
  root = _data_dir()
  rows, _, _ = stores.read_parts(root, stores.HOTPOTQA_FILES, limit=3)
  titles = {r["question"]: r["supporting_facts"][-1][0] for r in rows}
  lm = FakeLM(_search_then_finish(lambda e: titles[e.question], lambda e: "no idea"))
  path = tmp_path / "wiki.jsonl"
  result = agent_tasks.evaluate("hotpotqa_wiki", lm, root, "react", limit=3, trajectories_path=str(path))
  assert result["task"] == "hotpotqa_wiki" and result["store"] == "wiki"
  assert result["metrics"]["em"] == 0.0
  for line in path.read_text().splitlines():
    assert not json.loads(line)["observations"][0].startswith("Could not find")
  lm = FakeLM(lambda e, c, t: " " + e.gold)
  result = agent_tasks.evaluate("hotpotqa", lm, root, "standard", limit=3)
  assert result["metrics"]["em"] == 1.0 and result["store"] is None
  assert lm.turns[0].text.endswith("\nAnswer:")


@needs_data
def test_hotpotqa_fireact_end_to_end(tmp_path):
  root = _data_dir()
  rows, _, _ = stores.read_parts(root, stores.HOTPOTQA_FILES, limit=2)
  titles = {r["question"]: r["supporting_facts"][0][0] for r in rows}

  def policy(episode, context, turn):
    if not episode.actions:
      return f"Thought: Search first.\nAction: search[{titles[episode.question]}]"
    return f"Thought: Done.\nAction: finish[{episode.gold}]"

  lm = FakeLM(policy, template="chatml")
  path = tmp_path / "fireact.jsonl"
  result = agent_tasks.evaluate("hotpotqa", lm, root, "fireact", limit=2, trajectories_path=str(path))
  assert result["mode"] == "fireact" and result["shots"] == 0 and lm.prefixes == [""]
  assert result["metrics"] == {"em": 1.0, "f1": 1.0} and result["mean_steps"] == 2.0
  assert lm.turns[0].text == sft.prompt_text([("user", rows[0]["question"])], "chatml")
  for line in path.read_text().splitlines():
    t = json.loads(line)
    assert t["mode"] == "fireact" and not t["observations"][0].startswith("Could not find")
    assert "<|im_start|>user\nObservation: " in t["text"]


@needs_data
def test_fever_end_to_end():
  root = _data_dir()
  rows, _, _ = stores.read_parts(root, stores.FEVER_FILES, limit=3)
  pages = {r["claim"]: fever_pages.page_title(r["evidence_pages"][0][0]) for r in rows}
  lm = FakeLM(_search_then_finish(lambda e: pages[e.question], lambda e: e.gold))
  result = agent_tasks.evaluate("fever", lm, root, "react", limit=3)
  assert result["metrics"] == {"acc": 1.0} and result["total"] == 5322
  assert result["store_pairs"]["unplaced"] == 0
  assert "Claim: " in lm.turns[0].text


@needs_data
def test_gsm8k_tools_end_to_end():
  root = _data_dir()

  def policy(episode, context, turn):
    if not episode.actions:
      return " Compute.\nAction 1: Calculate[16 - 3 - 4]"
    return f" Done.\nAction 2: Finish[{episode.gold}]"

  lm = FakeLM(policy)
  result = agent_tasks.evaluate("gsm8k_tools", lm, root, "react", limit=3)
  assert result["metrics"] == {"acc": 1.0} and result["samples"] == 3 and result["total"] == 1319
  assert result["mean_steps"] == 2.0
