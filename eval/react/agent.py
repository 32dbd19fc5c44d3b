r"""One question as a multi-turn episode (the protocol in eval/api.py), in five modes:

  standard  "Question: q\nAnswer:"  -> one line, the answer
  cot       "Question: q\nThought:" -> reasoning, then "Answer: x"
  act       "Question: q\nAction 1:" -> Search[...] / Lookup[...] / Calculate[...] / Finish[...];
            the tool's result is appended as "\nObservation 1: ...\nAction 2:"
  react     "Question: q\nThought 1:" -> " thought\nAction 1: Search[X]" (stopped at
            "\nObservation"); "\nObservation 1: ...\nThought 2:" is appended, and so on
  fireact   FireAct's chat format (Chen et al. 2023), zero-shot in the model's chat template: the
            user turn is the question; the assistant writes "Thought: ...\nAction: search[X]" and
            its turn ends at EOS, the template's end marker or "\nObservation"; the observation
            comes back as a user turn "Observation: ..." and a new assistant turn opens

As in the ReAct notebook: a thought turn that ends without an "Action i:" line gets "\nAction i:"
appended and one more turn (stopped at the newline) for the action; a step is one action;
Search/search are the same tool; an action that does not parse, or names no tool, gets an
"Invalid action: ..." observation and uses up its step. After `max_steps` actions without
Finish the episode ends with the empty answer, scored wrong, finish_reason "step_limit"
(the notebook's `finish[]`; no extra model call, so scores compare with the paper's).
A fireact turn without an "Action:" line is an invalid (empty) action and a bad call: the turn
is closed, so there is no asking for the action separately.
Other finish reasons: "finish" (Finish[...] or an answer line), "no_answer" (standard / cot gave
an empty answer or no "Answer:" line), "context_full" (the engine called abort).

The context only grows (the engine appends each completion as generated), so text the model
writes after its action line stays in the context; stop strings ("\nObservation",
"\nThought", "\nQuestion:") keep that short.
"""

import re

from eval.api import Turn
from input_pipeline import sft

FEW_SHOT_MODES = ("standard", "cot", "act", "react")  # the paper's four, prompted with examples
MODES = FEW_SHOT_MODES + ("fireact",)  # fireact: zero-shot, in the model's chat template
TOOL_MODES = ("act", "react", "fireact")  # the modes that call tools (the others need no store)
TURN_ENDS = {"chatml": sft.CHATML_END}  # templates that hold a conversation -> their turn end
ANSWER_TOKENS = 32  # standard: one short line
COT_TOKENS = 256  # cot: a few sentences of reasoning and the answer line
THOUGHT_TOKENS = 128  # react: a thought and its action (the notebook allowed 100 GPT-3 tokens)
ACTION_TOKENS = 64  # act, and a react action asked for separately

_ACTION_LINE = re.compile(r"(?:^|\n)[ \t]*Action(?:[ \t]*\d+)?[ \t]*:")
_ACTION = re.compile(r"([A-Za-z_]+)[ \t]*\[(.*)\]", re.DOTALL)
_ANSWER_LINE = re.compile(r"Answer[ \t]*:(.*)")
_THOUGHT_HEAD = re.compile(r"^\s*Thought(?:[ \t]*\d+)?[ \t]*:")
_ARGUMENT_NAMES = {"search": "entity", "lookup": "keyword", "calculate": "expression"}


def check_chat_template(template, who="the model"):
  """A ValueError naming the problem unless `template` can hold a multi-turn conversation."""
  if template in TURN_ENDS:
    return
  has = (f"has template {template!r}, which holds one exchange" if template
         else "has no chat template (plain text)")
  raise ValueError(f"the FireAct chat format needs a multi-turn chat template "
                   f"({', '.join(TURN_ENDS)}), but {who} {has}: use a chat model (an imported "
                   "instruct model, or a run fine-tuned with template chatml)")


def parse_action(text):
  """(tool name lower-cased, argument stripped) from "Search[Milhouse]", or None."""
  match = _ACTION.fullmatch(text.strip())
  return (match.group(1).lower(), match.group(2).strip()) if match else None


class Episode:
  """A question, its tools and its score; after the episode `trajectory` holds one JSONL record.

  tools: {name: function(argument) -> observation} (finish is built in); score(prediction,
  gold) -> {"correct": bool, metric: float}; label: "Question" or "Claim" (FEVER).
  fireact only: template, the model's chat template ("chatml"); history, the conversation
  [(role, content)] before the question (a system message, earlier exchanges in chat.py).
  """

  def __init__(self, question, gold, *, mode, tools, score, max_steps, label="Question",
               example_id=None, template=None, history=()):
    if mode not in MODES:
      raise ValueError(f"mode {mode!r} is not one of {MODES}")
    if mode == "fireact":
      check_chat_template(template)
    self.template, self.messages = template, list(history)  # fireact: the conversation so far
    self.question, self.gold, self.mode, self.tools = question, gold, mode, dict(tools)
    self.score, self.max_steps, self.label, self.example_id = score, max_steps, label, example_id
    self.text = ""  # everything this episode appended or generated after the shared prefix
    self.thoughts, self.actions, self.observations = [], [], []
    self.bad_calls = 0  # react thought turns that needed a separate action turn
    self.trajectory = None
    self._waiting = None  # what the pending completion is: "answer", "thought" or "action"
    self._thought = ""

  # ---- the engine's side (eval/api.py) ---------------------------------------------------------

  def start(self):
    if self._waiting is not None or self.trajectory is not None:
      raise RuntimeError("Episode.start() called twice")
    head = f"{self.label}: {self.question}\n"
    if self.mode == "standard":
      return self._turn("answer", head + "Answer:", ("\n",), ANSWER_TOKENS)
    if self.mode == "cot":
      return self._turn("answer", head + "Thought:", (f"\n{self.label}:",), COT_TOKENS)
    if self.mode == "act":
      return self._turn("action", head + "Action 1:", ("\n",), ACTION_TOKENS)
    if self.mode == "fireact":
      return self._chat_turn(("user", self.question))
    return self._thought_turn(head + "Thought 1:")

  def step(self, completion):
    if self._waiting is None or self.trajectory is not None:
      raise RuntimeError("Episode.step() called before start() or after the episode ended")
    self.text += completion
    if self._waiting == "answer":
      return self._finish(self._answer(completion), "finish")
    if self.mode == "fireact":
      self.messages.append(("assistant", completion))
      match = _ACTION_LINE.search(completion)
      if match is None:
        self.bad_calls += 1
      head = completion[:match.start()] if match else completion
      self._thought = _THOUGHT_HEAD.sub("", head).strip()
      completion = completion[match.end():] if match else ""
    elif self._waiting == "thought":
      match = _ACTION_LINE.search(completion)
      if match is None:  # a thought only: ask for the action, as the notebook does
        self.bad_calls += 1
        self._thought = completion.strip().split("\n")[0].strip()
        return self._turn("action", f"\nAction {self._step}:", ("\n",), ACTION_TOKENS)
      self._thought = completion[:match.start()].strip()
      completion = completion[match.end():]
    lines = [line.strip() for line in completion.split("\n") if line.strip()]
    return self._act(lines[0] if lines else "")

  def abort(self, reason):
    if self.trajectory is not None:
      raise RuntimeError("Episode.abort() called after the episode ended")
    self._finish("", "context_full", abort_reason=reason)

  # ---- internals -------------------------------------------------------------------------------

  @property
  def _step(self):
    return len(self.actions) + 1

  def _turn(self, waiting, text, stop, max_new_tokens):
    self._waiting = waiting
    self.text += text
    return Turn(text, tuple(stop), max_new_tokens)

  def _thought_turn(self, text):
    stop = ("\nObservation", "\nThought", f"\n{self.label}:")
    return self._turn("thought", text, stop, THOUGHT_TOKENS)

  def _chat_turn(self, message):
    """fireact: adds `message` to the conversation and opens the assistant's reply; the turn's
    text is the template's rendering of what the context does not hold yet."""
    self.messages.append(message)
    rendered = sft.prompt_text(self.messages, self.template)
    if not rendered.startswith(self.text):
      raise RuntimeError(f"template {self.template!r} does not render the conversation by appending")
    stop = ("\nObservation", TURN_ENDS[self.template])
    return self._turn("thought", rendered[len(self.text):], stop, THOUGHT_TOKENS)

  def _act(self, action):
    if self.mode in ("react", "fireact"):
      self.thoughts.append(self._thought)
    self.actions.append(action)
    parsed = parse_action(action)
    if parsed is not None and parsed[0] == "finish":
      self.observations.append("")
      return self._finish(parsed[1], "finish")
    if parsed is not None and parsed[0] in self.tools:
      observation = self.tools[parsed[0]](parsed[1])
    else:
      names = [f"{n}[{_ARGUMENT_NAMES.get(n, 'argument')}]" for n in self.tools]
      observation = (f"Invalid action: {action}. Valid actions are {', '.join(names)}, "
                     "finish[answer].")
    observation = " ".join(observation.split("\n")).strip()  # one line, as the format needs
    self.observations.append(observation)
    i = len(self.actions)
    if self.mode == "fireact":
      if i < self.max_steps:
        return self._chat_turn(("user", f"Observation: {observation}"))
      self.messages.append(("user", f"Observation: {observation}"))
      closed = "".join(t for t, _ in sft.pieces(self.messages, self.template) if t is not None)
      return self._finish("", "step_limit", closing=closed[len(self.text):])
    if i >= self.max_steps:
      return self._finish("", "step_limit", closing=f"\nObservation {i}: {observation}")
    if self.mode == "react":
      return self._thought_turn(f"\nObservation {i}: {observation}\nThought {i + 1}:")
    return self._turn("action", f"\nObservation {i}: {observation}\nAction {i + 1}:", ("\n",),
                      ACTION_TOKENS)

  def _answer(self, completion):
    """standard: the first line; cot: what follows the last "Answer:" (empty when none)."""
    if self.mode == "standard":
      return completion.strip().split("\n")[0].strip()
    answers = _ANSWER_LINE.findall(completion)
    return answers[-1].strip() if answers else ""

  def _finish(self, prediction, reason, closing="", abort_reason=None):
    self.text += closing
    if reason == "finish" and self._waiting == "answer" and not prediction:
      reason = "no_answer"  # standard / cot: an empty line, or no "Answer:" line
    self.trajectory = dict(
        id=self.example_id, mode=self.mode, question=self.question, gold=self.gold,
        prediction=prediction, **self.score(prediction, self.gold), steps=len(self.actions),
        finish_reason=reason, abort_reason=abort_reason, bad_calls=self.bad_calls,
        thoughts=self.thoughts, actions=self.actions, observations=self.observations,
        text=self.text)
    return None
