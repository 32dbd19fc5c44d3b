r"""Chat with a model: a training workdir, a Hugging Face dir, a .gguf file or a packaged model.

  python chat.py --model=smollm2-135m-instruct
  python chat.py --model=runs/sft --system="Answer in one sentence." --temperature=0.7
  python chat.py --model=smollm2-135m-instruct --tools=search,calculator --store=wiki
  python chat.py --model=runs/tiny --prompt="The king" --prompt=" and the queen"   # no stdin

Replies stream as they are generated, in the model's own template (--template overrides it; "none"
is plain text: the model continues the transcript). Every prompt holds the conversation so far,
except under alpaca, a one-exchange template, where each message is answered on its own. Typed
lines starting with a slash are commands: /reset forgets the conversation, /quit (or the end of
the input) leaves.

--tools runs each message as a ReAct episode in FireAct's chat format (eval/react/agent.py, mode
fireact): thoughts and actions stream, each observation is printed as it comes back, then the
answer; the question and its answer join the conversation. Without --system the model is told the
format and its actions; --system="" leaves that out (FireAct's zero-shot prompt, for models
fine-tuned on its trajectories). search (with lookup) reads --store: "wiki", the local Wikipedia of
HotpotQA intro pages, or "distractor:N", the 10 paragraphs of HotpotQA dev question N.
"""

import sys

from absl import app, flags, logging

from eval import data
from eval.react import agent, stores, tools
from input_pipeline import sft
from models import decode
from training import model_source

TOOLS = ("calculator", "search")  # --tools names; search brings lookup with it
TEMPLATES = sft.TEMPLATES + ("none",)
_ACTION_HELP = {
    "search": "search[entity] shows the first sentences of the page titled entity, or similar titles",
    "lookup": "lookup[keyword] shows the next sentence of that page containing keyword",
    "calculate": "calculate[expression] evaluates arithmetic such as 3 * (4 + 5)",
}

_MODEL = flags.DEFINE_string("model", None, "Workdir, Hugging Face dir, .gguf file or packaged model name.")
_TEMPLATE = flags.DEFINE_string("template", "", f"One of {TEMPLATES}; empty: the model's own.")
_SYSTEM = flags.DEFINE_string("system", None, "System message (unset: none, or the tool format with --tools).")
_TOOLS = flags.DEFINE_list("tools", [], f"ReAct tools to turn on, from {TOOLS}.")
_STORE = flags.DEFINE_string("store", "wiki", "What search reads: wiki, distractor:N or distractor:A-B.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Eval data dir; empty: $FRUGAL_DATA_DIR, else ../shared/data.")
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 256, "Tokens per reply (per turn with --tools: 128).")
_MAX_STEPS = flags.DEFINE_integer("max_steps", 7, "Actions per question with --tools (HotpotQA's limit).")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.0, "0 is greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample from the k likeliest tokens; 0: all.")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Sample from the smallest set holding this probability.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed (each reply uses the next one).")
_PROMPT = flags.DEFINE_multi_string("prompt", [], "User turns to run in order, then exit (no stdin).")
flags.mark_flags_as_required(["model"])


def check_flags(template, tool_names, store):
  """ValueError naming the first bad value; checked before the model loads."""
  if template and template not in TEMPLATES:
    raise ValueError(f"unknown template {template!r}; expected one of {TEMPLATES} (empty: the model's own)")
  for name in tool_names:
    if name not in TOOLS:
      raise ValueError(f"unknown tool {name!r}; expected some of {TOOLS}")
  stores.parse_spec(store)


def tools_system(tool_names):
  """The default system message with --tools: the turn format and the actions."""
  actions = [_ACTION_HELP[a] for name in tool_names
             for a in (("search", "lookup") if name == "search" else ("calculate",))]
  return ("Answer the question in steps. Each reply is one thought and one action, written as\n"
          "Thought: <your reasoning>\nAction: <action>\nThe actions are:\n" +
          "".join(f"- {a}\n" for a in actions) + "- finish[answer] gives the answer and ends.\n"
          "The result of each action comes back as \"Observation: ...\".")


class Chat:
  """A conversation with one model; `history` holds the finished exchanges [(role, content)].
  system: the system message; None is none, or with tools the format and actions (tools_system)."""

  def __init__(self, sampler, template, *, system=None, tool_names=(), store=None, max_steps=7,
               max_new_tokens=256, temperature=0.0, top_k=0, top_p=1.0, seed=0):
    if tool_names:
      agent.check_chat_template(template)
      system = tools_system(tool_names) if system is None else system
    self.sampler, self.template, self.system = sampler, template, system
    self.tool_names, self.store, self.max_steps = tuple(tool_names), store, max_steps
    self.max_new_tokens = max_new_tokens
    self.sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    self.seed = seed
    self.history = []

  def reset(self):
    self.history = []

  def reply(self, text, write):
    """Answers one user message, passing the reply to write(str) piece by piece; returns the
    answer ("" when the agent found none, which then stays out of the conversation)."""
    answer = self._agent(text, write) if self.tool_names else self._plain(text, write)
    if answer:
      self.history += [("user", text), ("assistant", answer)]
    return answer

  def messages(self, text):
    """The conversation the reply to `text` continues (alpaca: no earlier exchanges)."""
    system = [("system", self.system)] if self.system else []
    return system + ([] if self.template == "alpaca" else self.history) + [("user", text)]

  def _plain(self, text, write):
    messages = self.messages(text)
    if self.template is None:
      prompt = "".join(content for _, content in messages)
    else:
      prompt = sft.prompt_text(messages, self.template)
    stop = (agent.TURN_ENDS[self.template],) if self.template in agent.TURN_ENDS else ()
    return self._stream(prompt, self.max_new_tokens, stop, write)

  def _agent(self, text, write):
    episode_tools = {}
    if "search" in self.tool_names:
      episode_tools.update(tools.Browser(self.store).tools())  # a fresh page and lookup cursor
    if "calculator" in self.tool_names:
      episode_tools.update(tools.calculator_tools())
    episode = agent.Episode(text, None, mode="fireact", tools=episode_tools,
                            score=lambda prediction, gold: {}, max_steps=self.max_steps,
                            template=self.template, history=self.messages(text)[:-1])
    context, turn = "", episode.start()
    while turn is not None:
      context += turn.text
      completion = self._stream(context, turn.max_new_tokens, turn.stop, write)
      context += completion
      write("\n")
      turn = episode.step(completion)
      if episode.trajectory is None or episode.trajectory["finish_reason"] == "step_limit":
        write(f"Observation: {episode.observations[-1]}\n")
    trajectory = episode.trajectory
    if trajectory["finish_reason"] != "finish":
      write(f"(no answer after {trajectory['steps']} actions)\n")
      return ""
    write(f"Answer: {trajectory['prediction']}\n")
    return trajectory["prediction"]

  def _stream(self, prompt, max_new_tokens, stop, write):
    pieces = []
    for piece in self.sampler.stream(prompt, max_new_tokens=max_new_tokens, stop=stop,
                                     seed=self.seed, **self.sampling):
      write(piece)
      pieces.append(piece)
    self.seed += 1  # a new draw for every reply
    return "".join(pieces)


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  tool_names = [name.strip() for name in _TOOLS.value if name.strip()]
  try:
    check_flags(_TEMPLATE.value, tool_names, _STORE.value)
    config, graphdef, params, tokenizer = model_source.load(_MODEL.value)
    template = _TEMPLATE.value
    if not template:
      template = sft.model_template(config, tokenizer)
    elif template == "none":
      template = None
    else:
      sft.check_template(template, tokenizer)
    if tool_names:
      agent.check_chat_template(template, f"--template={_TEMPLATE.value}" if _TEMPLATE.value
                                else f"model {_MODEL.value!r}")
    store = None
    if "search" in tool_names:
      store, about = stores.load_spec(_STORE.value, data.data_dir(_DATA_DIR.value))
      print(f"search reads {about}", file=sys.stderr)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")
  chat = Chat(decode.Sampler(graphdef, params, tokenizer), template, system=_SYSTEM.value,
              tool_names=tool_names, store=store, max_steps=_MAX_STEPS.value,
              max_new_tokens=_MAX_NEW_TOKENS.value, temperature=_TEMPERATURE.value,
              top_k=_TOP_K.value, top_p=_TOP_P.value, seed=_SEED.value)

  def write(text):
    sys.stdout.write(text)
    sys.stdout.flush()

  if _PROMPT.value:
    for text in _PROMPT.value:
      write(f"> {text}\n")
      chat.reply(text, write)
      write("\n")
    return
  interactive = sys.stdin.isatty()
  print(f"{_MODEL.value}: template {template or 'none (plain text)'}"
        f"{', tools ' + ', '.join(tool_names) if tool_names else ''}; "
        "/reset forgets the conversation, /quit leaves", file=sys.stderr)
  while True:
    if interactive:
      write("> ")
    line = sys.stdin.readline()
    if not line or line.strip() == "/quit":
      break
    text = line.rstrip("\n")
    if text.strip() == "/reset":
      chat.reset()
      write("(conversation cleared)\n")
    elif text.strip():
      chat.reply(text, write)
      write("\n")


if __name__ == "__main__":
  app.run(main)
