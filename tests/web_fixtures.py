"""The Python side of the page's ReAct checks: Episodes built from a web bundle's react section
(export/search_index.py) exactly as web/js/react.js builds them, scripted runs of them, and the
calculator question the browser test asks.

REACT_QUESTION is answered by SmolLM2-135M-Instruct (greedy, the project's own agent path:
eval.lm.LM.run_episodes) through Calculate with the section react_section(**REACT_SECTION);
REACT_TRAJECTORY is what that run produced, turn by turn (`PYTHONPATH=. python
tests/web_fixtures.py` runs it again and says whether it still matches; about a minute on a CPU).
"""

import json
import sys

from eval.react import agent, scoring, tools as tools_lib

REACT_QUESTION = "A farmer has 12 cows and buys 15 more. How many cows does he have now?"
REACT_GOLD = "27"
REACT_SECTION = dict(prompts="gsm8k", mode="react")  # react_section kwargs of the recorded run
# The model first thinks 12 + 15 = 26 (without an action line, so the Episode asks for the action
# separately), calculates 27 and answers 27. Its smallest greedy margin is 0.16 nats (" +" in
# the first thought); the same question gives the same trajectory with search / lookup added to
# the tools (react_section(docs=...)): it takes no invalid action, whose message lists the tools.
REACT_TURNS = [  # each turn: the text the Episode appended, then what the model wrote
    dict(text=f"Question: {REACT_QUESTION}\nThought 1:",
         stop=["\nObservation", "\nThought", "\nQuestion:"], maxNewTokens=128,
         completion=" He has 12 + 15 = 26 cows."),
    dict(text="\nAction 1:", stop=["\n"], maxNewTokens=64, completion=" Calculate[12 + 15]"),
    dict(text="\nObservation 1: 27\nThought 2:",
         stop=["\nObservation", "\nThought", "\nQuestion:"], maxNewTokens=128,
         completion=" He has 27 cows now.\nAction 2: Finish[27]"),
]
REACT_TRAJECTORY = dict(
    question=REACT_QUESTION, gold=REACT_GOLD, prediction="27", correct=True, finish_reason="finish",
    bad_calls=1, thoughts=["He has 12 + 15 = 26 cows.", "He has 27 cows now."],
    actions=["Calculate[12 + 15]", "Finish[27]"], observations=["27", ""],
    text="".join(t["text"] + t["completion"] for t in REACT_TURNS), turns=REACT_TURNS)


def episode_tools(names, store=None):
  """{name: tool} in the section's order (the invalid-action message lists them in it); search
  and lookup share one Browser over `store` (a DocStore), as makeTools in react.js."""
  browser = tools_lib.Browser(store) if store is not None else None
  available = dict(tools_lib.calculator_tools())
  if browser is not None:
    available.update(browser.tools())
  missing = [n for n in names if n not in available]
  if missing:
    raise ValueError(f"tools {missing} need a store")
  return {name: available[name] for name in names}


def python_episode(section, question, gold=None, store=None):
  """The agent.Episode the page's makeEpisode(question, section, docs) mirrors."""
  return agent.Episode(
      question, gold, mode=section["mode"], tools=episode_tools(section["tools"], store),
      score=scoring.score_gsm8k if gold is not None else (lambda prediction, gold: {}),
      max_steps=section["max_steps"], label=section["label"], template=section["template"],
      history=[tuple(m) for m in section["history"]])


def scripted_run(section, question, completions, store=None, abort_at=None):
  """Runs a Python Episode on fixed completions, keeping the context as the engine does.
  abort_at: the index of the completion at which the context is full (abort instead).
  Returns {turns: [{text, stop, maxNewTokens}], contexts: [context each completion continues],
  trajectory}."""
  episode = python_episode(section, question, store=store)
  context, turns, contexts = section["prompt"], [], []
  turn = episode.start()
  for i, completion in enumerate(completions):
    if turn is None:
      break
    context += turn.text
    turns.append(dict(text=turn.text, stop=list(turn.stop), maxNewTokens=turn.max_new_tokens))
    contexts.append(context)
    if i == abort_at:
      episode.abort("context full")
      break
    context += completion
    turn = episode.step(completion)
  if episode.trajectory is None:
    raise ValueError(f"the scripted completions ended before the episode ({len(completions)} given)")
  return dict(turns=turns, contexts=contexts, trajectory=episode.trajectory)


class Recorder:
  """An episode for the engine that passes everything to `episode` and keeps each turn with the
  completion the model wrote for it (trajectory["turns"])."""

  def __init__(self, episode):
    self.episode, self.turns = episode, []

  def _keep(self, turn):
    if turn is not None:
      self.turns.append(dict(text=turn.text, stop=list(turn.stop),
                             maxNewTokens=turn.max_new_tokens, completion=None))
    return turn

  def start(self):
    return self._keep(self.episode.start())

  def step(self, completion):
    self.turns[-1]["completion"] = completion
    return self._keep(self.episode.step(completion))

  def abort(self, reason):
    self.episode.abort(reason)

  @property
  def trajectory(self):
    return None if self.episode.trajectory is None else dict(self.episode.trajectory, turns=self.turns)


def run_python_agent(questions=((REACT_QUESTION, REACT_GOLD),), section=None,
                     model="smollm2-135m-instruct", max_length=2048, store=None, batch_size=1):
  """Trajectories (with "turns": each turn's text, stop strings, budget and the completion) of
  (question, gold) pairs under the project's own agent path (greedy decoding, models/engine.py)
  with the page's react section (default: react_section(**REACT_SECTION))."""
  from eval.lm import LM
  from export import search_index
  from input_pipeline import sft
  from training import model_source
  section = section or search_index.react_section(**REACT_SECTION)
  config, graphdef, params, tokenizer = model_source.load(model)
  lm = LM(graphdef, params, tokenizer, model, max_length=max_length, agent_batch_size=batch_size,
          template=sft.model_template(config, tokenizer))
  episodes = [Recorder(python_episode(section, q, gold, store)) for q, gold in questions]
  lm.run_episodes(section["prompt"], episodes)
  return [e.trajectory for e in episodes]


if __name__ == "__main__":
  got, = run_python_agent()
  print(json.dumps(got, indent=1))
  differ = [field for field, value in REACT_TRAJECTORY.items() if got[field] != value]
  print("differs from REACT_TRAJECTORY in " + ", ".join(differ) if differ else "same as REACT_TRAJECTORY")
  sys.exit(1 if differ else 0)
