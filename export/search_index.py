"""The browser page's ReAct settings (manifest["react"]) and document index (docs.json).

  react_section(prompts="gsm8k", mode="react", docs="distractor:0-99")  ->  manifest["react"]
  docs_index("distractor:0-99")                                         ->  docs.json

The page's agent (web/js/react.js) and tools (web/js/tools/) are ports of eval/react; what they
need from Python comes from here, computed by the same code the Python agent runs: the few-shot
prompt from eval/react/prompts.py, each turn's stop strings and token budget read off an
eval.react.agent.Episode, and the index of the DocStore that Python searches (its pages, title
keys and the BM25 scores bm25s computed), so a question gets the same observations in both.

Docs specs, as chat.py's --store, plus ranges:
  distractor:N      the 10 context paragraphs of HotpotQA dev question N (chat.py's store)
  distractor:A-B    the paragraphs of questions A..B together (a title seen twice: the later
                    question's paragraph, as in one question's store)
  wiki              the 28,341 HotpotQA intro pages (some 35 MB of JSON: too big for a page)
DEFAULT_DOCS (questions 0-99: 991 pages) is 1.3 MB of JSON (`python -m
export.search_index` prints the size of a spec).
"""

import base64
import functools
import html.entities
import json
import os
import sys

from bm25s import stopwords as bm25_stopwords
import numpy as np

from eval import data
from eval.react import agent, gsm8k_tools, hotpotqa, prompts as prompts_lib, stores
from eval.react import tools as tools_lib
from input_pipeline import sft

FORMAT_VERSION = 1  # docs.json's "frugal_docs"; web/js/tools/docstore.js checks it
DEFAULT_DOCS = "distractor:0-99"
FAMILY_TOOLS = {"gsm8k": ("calculate",), "hotpotqa": ("search", "lookup")}  # what each prompt shows
MAX_STEPS = {"gsm8k": gsm8k_tools.MAX_STEPS, "hotpotqa": hotpotqa.MAX_STEPS}
TOOLS = ("calculate", "search", "lookup")
LABEL = "Question"
# Named HTML entities the page decodes in a search query (html.unescape knows 2,231; the page
# ships these, with and without ";").
COMMON_ENTITIES = ("amp", "lt", "gt", "quot", "apos", "nbsp", "ndash", "mdash", "lsquo", "rsquo",
                   "ldquo", "rdquo", "hellip", "eacute", "egrave", "aacute", "oacute", "uuml",
                   "ouml", "auml", "ntilde", "ccedil", "copy", "reg", "trade", "euro", "pound",
                   "deg", "times", "middot")


# ---- manifest["react"] --------------------------------------------------------------------------

def react_section(*, prompts="gsm8k", mode="react", tools=None, docs="", data_dir="",
                  template=None, system=None):
  """manifest["react"]: what web/js/react.js needs to run an Episode as eval/react does.

  prompts: the few-shot family ("gsm8k": Calculate; "hotpotqa": Search / Lookup), whose prompt
  file, max steps and default tools are used; mode: one of agent.MODES; tools: tool names in the
  order the invalid-action message lists them (default: the family's, plus search and lookup
  when `docs` is set); docs: the docs spec the page searches ("" for none); template: the chat
  template, needed for fireact ("chatml"); system: fireact's system message (None: none).
  Returns {mode, prompts, prompt, label, tools, max_steps, turns: {kind: {stop, max_new_tokens}},
  docs, template, chat_markers, history}.
  """
  if prompts not in FAMILY_TOOLS:
    raise ValueError(f"react prompts {prompts!r}: expected one of {tuple(FAMILY_TOOLS)}")
  if mode not in agent.MODES:
    raise ValueError(f"react mode {mode!r}: expected one of {agent.MODES}")
  if tools is None:
    tools = FAMILY_TOOLS[prompts] + tuple(t for t in ("search", "lookup") if docs and
                                          t not in FAMILY_TOOLS[prompts])
  tools = tuple(tools)
  unknown = [t for t in tools if t not in TOOLS]
  if unknown:
    raise ValueError(f"react tools {list(tools)}: unknown {unknown}; expected some of {TOOLS}")
  if {"search", "lookup"} & set(tools) and not docs:
    raise ValueError(f"react tools {list(tools)} include search/lookup, which need docs "
                     "(a docs spec such as distractor:0-99)")
  if docs:
    stores.parse_spec(docs)
  if mode == "fireact":
    agent.check_chat_template(template, "the web bundle's model")
  root = data.data_dir(data_dir) if prompts != "gsm8k" else ""  # gsm8k prompts are in the repo
  history = [["system", system]] if mode == "fireact" and system else []
  return dict(
      mode=mode, prompts=prompts, prompt=prompts_lib.fewshot(root, prompts, mode), label=LABEL,
      tools=list(tools), max_steps=MAX_STEPS[prompts],
      turns=episode_turns(mode, template, [tuple(m) for m in history]), docs=docs or None,
      template=template if mode == "fireact" else None,
      chat_markers=(dict(start=sft.CHATML_START, end=sft.CHATML_END)
                    if mode == "fireact" else None),
      history=history)


def episode_turns(mode, template=None, history=()):
  """{kind: {"stop": [...], "max_new_tokens": n}} of the turns an Episode in `mode` asks for,
  read off the Python Episode itself: "answer" (standard, cot), "thought" (react, fireact) and
  "action" (act, and react's action asked for after a thought without one)."""
  def episode():
    return agent.Episode("q", None, mode=mode, tools={}, score=lambda p, g: {}, max_steps=2,
                         label=LABEL, template=template, history=history)

  def spec(turn):
    return {"stop": list(turn.stop), "max_new_tokens": turn.max_new_tokens}

  first = episode().start()
  if mode in ("standard", "cot"):
    return {"answer": spec(first)}
  if mode == "act":
    return {"action": spec(first)}
  thought_only = episode()
  thought_only.start()
  turns = {"thought": spec(first)}
  following = thought_only.step(" a thought without an action")
  if mode == "react":
    turns["action"] = spec(following)
  return turns


# ---- docs.json ----------------------------------------------------------------------------------

def docs_index(spec=DEFAULT_DOCS, data_dir=""):
  """The JSON-able index web/js/tools/docstore.js searches, of the DocStore `spec` names."""
  store, about = stores.load_spec(spec, data.data_dir(data_dir))
  return store_index(store, spec, about)


def store_index(store, spec="", about=""):
  """The index of a DocStore as Python built it (titles in order, sentences, normalised title
  keys) and its bm25s index (vocabulary in id order, the float32 scores as base64 little-endian
  bytes, CSC indices and indptr), with the stop words, casefold exceptions and HTML entities
  the page's normalisation uses."""
  position = {title: i for i, title in enumerate(store.titles)}
  bm25 = None
  if store._bm25 is not None:  # the index Python ranks with
    scores, vocab = store._bm25.scores, store._bm25.vocab_dict
    words = sorted(vocab, key=vocab.get)
    if [vocab[w] for w in words] != list(range(len(words))):
      raise RuntimeError("bm25s vocabulary ids are not 0..V-1; docs.json cannot list them in order")
    bm25 = dict(vocab=words,
                data_f32le=base64.b64encode(np.asarray(scores["data"], "<f4").tobytes()).decode(),
                indices=np.asarray(scores["indices"]).tolist(),
                indptr=np.asarray(scores["indptr"]).tolist())
  return dict(
      frugal_docs=FORMAT_VERSION, spec=spec, about=about, titles=list(store.titles),
      sentences=[store.pages[t] for t in store.titles],
      keys=[[key, position[title]] for key, title in store._by_key.items()],
      bm25=bm25, stopwords=list(bm25_stopwords.STOPWORDS_EN), casefold=_casefold_exceptions(),
      entities={name: text for name, text in html.entities.html5.items()
                if name.rstrip(";") in COMMON_ENTITIES},
      sentences_shown=tools_lib.SENTENCES_SHOWN, similar_shown=tools_lib.SIMILAR_SHOWN)


def write_docs_index(path, spec=DEFAULT_DOCS, data_dir=""):
  """Writes docs_index(spec) as compact JSON to `path`; returns its size in bytes."""
  text = json.dumps(docs_index(spec, data_dir), ensure_ascii=False, separators=(",", ":"))
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return os.path.getsize(path)


@functools.lru_cache(maxsize=1)
def _casefold_exceptions():
  """{char: char.casefold()} where casefold differs from lower (the page folds the rest with
  toLowerCase): about 300 characters such as "ß" -> "ss"."""
  exceptions = {}
  for code in range(sys.maxunicode + 1):
    char = chr(code)
    if 0xD800 <= code <= 0xDFFF:
      continue
    folded = char.casefold()
    if folded != char.lower():
      exceptions[char] = folded
  return exceptions


if __name__ == "__main__":
  for arg in sys.argv[1:] or [DEFAULT_DOCS]:
    index = docs_index(arg)
    size = len(json.dumps(index, ensure_ascii=False, separators=(",", ":")).encode())
    print(f"{arg}: {len(index['titles'])} pages, {size / 1e6:.2f} MB of JSON")
