"""The in-browser page (web/): its JavaScript under Node (tokenizer parity with Python `tokenizers`,
the decoding loop), and the page itself in headless Chromium against a real web export of
SmolLM2-135M-Instruct: greedy ids equal JAX's, a ReAct question answered through the calculator
with the trajectory on the page, a screenshot, tokens per second, and bad bundles (truncated,
corrupt, missing files) that must end in a clear message, not a hung page.

Needs node, web/node_modules (cd web && npm ci --ignore-scripts) and Debian's chromium
(/usr/bin/chromium, driven by playwright-core; no browser download). Without them these tests are
skipped, except under CI ($CI set), where that is a failure. Every request the page makes to a
host other than 127.0.0.1/localhost is aborted and counted; the count must be 0.
"""

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys

import pytest

from models.config import model_config
from training import config as config_lib

import web_fixtures  # tests/web_fixtures.py: the ReAct question and Python's trajectory for it

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB = os.path.join(REPO, "web")
CHROMIUM = "/usr/bin/chromium"
MODEL = "smollm2-135m-instruct"
UNIT_TESTS = ("web/tests/unit/tokenizer.test.mjs", "web/tests/unit/lm.test.mjs",
              "web/tests/unit/chat.test.mjs")  # the page's own; the ReAct port's run in their tests

# Tokenizer parity texts: the cases where tokenizers differ (whitespace runs and Unicode spaces
# the GPT-2 regex treats specially, contractions, digits, emoji split across byte tokens, CJK,
# combining marks, chat markup with special tokens and near-misses of it, SentencePiece's "▁").
TEXTS = (
    "Hello world", "Hello, world! How's it going? I'm fine; we'll see, they'd've.",
    "  leading spaces", "trailing spaces   ", "tabs\tand\nnewlines\n\n\nruns    of   spaces \n \n",
    "\r\n windows \r\n line ends", "digits 1234567890 3.14159 -42 1,000,000 2024-01-31",
    "punctuation!!! ??? ... --- ((( ))) [x] {y} <z> @#$%^&*_+=|\\/~`",
    "emoji 😀👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
    "CJK 你好，世界。日本語のテキスト 한국어",
    "accented café naïve Straße Ærøskøbing façade", "combining e\u0301 and n\u0303",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|>", "almost special <|im_start and <|im_end| and |>",
    "nbsp\u00a0here, nel\u0085there, bom\ufeffthere, ideographic\u3000space", "zero\u200bwidth",
    "'s 'S 'T 're 'VE x's", "Ω≈ç√∫˜µ≤≥÷ ½ ⅔ ² ³ ٣ ۴",
    "Thought: I need 17 * 23.\nAction: calculate[17 * 23]\nObservation: 391",
    "", " ", "\n", "a", "▁ underscores ▁▁ and <0x41> literal",
    "mixedCase camelCaseWord snake_case_word kebab-case-word", "x" * 300 + " " + "ab" * 100,
)

# Greedy parity prompts (chat markup, plain text, accents and an emoji the model splits into
# byte tokens) and how many ids to compare.
PARITY_PROMPTS = (
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The history of the printing press",
    "<|im_start|>user\nÉcris un haïku sur la mer 🌊<|im_end|>\n<|im_start|>assistant\n",
)
PARITY_TOKENS = 16
# Two chat turns: the second must prefill only its own tokens (the KV cache holds the first).
CHAT_MESSAGES = ("Summarise in one sentence: The printing press, developed by Johannes Gutenberg "
                 "around 1440, made books cheaper and faster to produce, which spread literacy and "
                 "new ideas across Europe.", "Who developed it?")


def _require(ok, what):
  """Skips locally, fails under CI: CI must run the browser tests."""
  if ok:
    return
  if os.environ.get("CI"):
    pytest.fail(f"{what}; CI must run the web tests (.ci/run installs chromium and web/node_modules)")
  pytest.skip(what)


@pytest.fixture(scope="module")
def node():
  path = shutil.which("node")
  _require(path, "node is not installed")
  return path


@pytest.fixture(scope="module")
def browser_node(node):
  """node, once web/node_modules and Chromium are known to be there."""
  for package in ("onnxruntime-web/dist/ort.wasm.min.mjs", "playwright-core/package.json"):
    _require(os.path.isfile(os.path.join(WEB, "node_modules", package)),
             "web/node_modules is missing: cd web && npm ci --ignore-scripts")
  _require(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: apt-get install -y chromium")
  return node


def _tokenizer_fixture(tok, tokenizer_path, name, out_path):
  """Python `tokenizers`' encode and decode of TEXTS (and of cut and random id sequences, whose
  half characters decode as U+FFFD) for web/tests/unit/tokenizer.test.mjs."""
  encode = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in TEXTS]
  sequences = [e["ids"] for e in encode]
  sequences += [e["ids"][i:i + 1] for e in encode for i in range(0, len(e["ids"]), 3)]
  rng = random.Random(0)
  vocab = tok.get_vocab_size(with_added_tokens=True)
  sequences += [[rng.randrange(vocab) for _ in range(rng.randrange(1, 12))] for _ in range(40)]
  decode = [{"ids": ids, "text": tok.decode(ids, skip_special_tokens=False)} for ids in sequences]
  with open(out_path, "w") as f:
    json.dump({"name": name, "tokenizer": tokenizer_path, "encode": encode, "decode": decode}, f)
  return out_path


def _smollm2_tokenizer():
  """SmolLM2's byte-level BPE tokenizer (read from its GGUF; no weights loaded)."""
  import gguf
  from input_pipeline import hf_tokenizer
  from training import model_source
  _, path = model_source.resolve(MODEL)
  return hf_tokenizer.HFTokenizer.from_gguf(gguf.GGUFReader(path), path)


def test_javascript_units_and_tokenizer_parity(node, tmp_path, tiny_tokenizer):
  """node --test on the page's unit tests, with encode/decode fixtures from Python `tokenizers`
  for both tokenizer kinds: byte-level BPE (SmolLM2) and SentencePiece-style BPE (ours)."""
  from export import tokenizer_json
  fixtures = []
  for name, tok in (("byte-level BPE (SmolLM2)", tokenizer_json.to_tokenizers(_smollm2_tokenizer())),
                    ("SentencePiece BPE (ours)", tokenizer_json.from_sentencepiece(tiny_tokenizer))):
    directory = tmp_path / str(len(fixtures))
    directory.mkdir()
    tok.save(str(directory / "tokenizer.json"))
    fixtures.append(_tokenizer_fixture(tok, str(directory / "tokenizer.json"), name,
                                       str(directory / "fixture.json")))
  env = dict(os.environ, FRUGAL_TOKENIZER_FIXTURES=",".join(fixtures))
  run = subprocess.run([node, "--test", *UNIT_TESTS], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300, check=False)
  report = run.stdout + run.stderr
  assert run.returncode == 0, report[-6000:]
  for name in ("byte-level BPE (SmolLM2)", "SentencePiece BPE (ours)"):
    ran = re.search(rf"^ok \d+ - {re.escape(name)}: encode equals Python tokenizers", report, re.M)
    assert ran, report[-3000:]
  assert not re.search(r"^# skipped [1-9]", report, re.M), report[-3000:]


# ---- the page in Chromium -------------------------------------------------------------------


class _Server:
  """web/serve.py on a free port, as a user starts it."""

  def __init__(self, bundle):
    self.process = subprocess.Popen([sys.executable, os.path.join(WEB, "serve.py"), f"--bundle={bundle}",
                                     "--port=0"], cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
    line = self.process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not match:
      self.process.kill()
      raise AssertionError(f"web/serve.py did not start: {line}{self.process.communicate()[1]}")
    self.url = match.group(0)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.process.terminate()
    self.process.communicate(timeout=10)  # and close the pipes


def _run_page(node, url, cases, tmp_path, query="device=wasm", timeout_s=400):
  """web/tests/page.mjs in headless Chromium; returns what it saw (see that file)."""
  config = {"base_url": url, "query": query, "out": str(tmp_path / "page.json"),
            "chromium": CHROMIUM, "timeout_ms": 1000 * (timeout_s - 60), "cases": cases}
  (tmp_path / "page_config.json").write_text(json.dumps(config))
  run = subprocess.run([node, os.path.join(WEB, "tests", "page.mjs"), str(tmp_path / "page_config.json")],
                       capture_output=True, text=True, timeout=timeout_s, check=False)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  return json.loads((tmp_path / "page.json").read_text())


class _NoEos:
  """A tokenizer whose EOS id matches no token, so the engine generates every requested token."""

  eos_id = -1

  def __init__(self, tokenizer):
    self.encode, self.decode = tokenizer.encode, tokenizer.decode


def _greedy_ids(graphdef, params, tokenizer, prompts, n):
  """n greedy ids per prompt from the one decoding loop (models/engine), EOS not stopping."""
  from models import engine
  ids = [[] for _ in prompts]
  episodes = [engine.OneTurn(engine.Turn(p, (), n)) for p in prompts]
  decoder = engine.Engine(graphdef, params, _NoEos(tokenizer), batch_size=len(prompts),
                          max_length=engine.bucket(max(len(tokenizer.encode(p)) for p in prompts) + n + 2, (256,)))
  for episode, token in decoder.tokens("", episodes):
    ids[episodes.index(episode)].append(token)
  assert all(len(row) == n for row in ids), ids
  return ids


def _jax_greedy(prompts, n):
  """(prompt ids, n greedy ids per prompt) from our JAX model, EOS not stopping."""
  from training import model_source
  _, graphdef, params, tokenizer = model_source.load(MODEL)
  return [tokenizer.encode(p) for p in prompts], _greedy_ids(graphdef, params, tokenizer, prompts, n)


@pytest.mark.slow
def test_page_runs_smollm2_in_chromium(browser_node, tmp_path):
  """One export (f32) and one browser session: parity, ReAct, screenshot, tokens/s, no outside
  requests. Failures are gathered so one broken case does not hide the others."""
  from export import search_index
  out = tmp_path / "export"
  export = subprocess.run([sys.executable, "-m", "export", f"--model={MODEL}", "--format=web",
                           f"--out={out}", "--web_variants=f32", "--docs="], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)
  assert export.returncode == 0, export.stderr[-3000:]
  manifest = json.loads((out / "web" / "manifest.json").read_text())
  # The page's agent then runs the episode Python's did for web_fixtures.REACT_TRAJECTORY.
  assert manifest["react"] == search_index.react_section(**web_fixtures.REACT_SECTION)
  prompt_ids, expected = _jax_greedy(PARITY_PROMPTS, PARITY_TOKENS)
  screenshot = tmp_path / "page.png"
  with _Server(out / "web") as server:
    seen = _run_page(browser_node, server.url, {
        "parity": {"prompts": [{"ids": ids, "n": PARITY_TOKENS} for ids in prompt_ids]},
        "react": {"question": web_fixtures.REACT_QUESTION},
        "screenshot": str(screenshot),
        "chat": {"messages": CHAT_MESSAGES},
        "canary": True,
    }, tmp_path, query="device=wasm&max_new_tokens=48")
  print(f"page: {json.dumps(seen['seconds'])} s; console: {seen['console'][-5:]}")
  problems = [f"{case}: {message}" for case, message in seen["errors"].items()]
  if seen["blocked"]:
    problems.append(f"requests to other hosts: {seen['blocked']}")
  if seen.get("canary", {}).get("blocked") != ["http://example.com/frugal-canary"]:
    problems.append(f"the outside-request guard did not catch the canary: {seen.get('canary')}")

  if "parity" in seen:
    for prompt, got, want in zip(PARITY_PROMPTS, [row["greedy"] for row in seen["parity"]], expected):
      if got != want:
        problems.append(f"greedy ids differ from JAX for {prompt!r}: page {got}, JAX {want}")

  react = seen.get("react")
  if react:
    trajectory = react["trajectory"]
    calls = [i for i, a in enumerate(trajectory["actions"]) if re.match(r"\s*calculate\s*\[", a, re.I)]
    if not calls:
      problems.append(f"ReAct did not call the calculator: {react['page_text']!r}")
    for i in calls:
      if f"Observation: {trajectory['observations'][i]}" not in react["observations"]:
        problems.append(f"calculator observation {trajectory['observations'][i]!r} not on the page")
    if trajectory["finish_reason"] != "finish" or trajectory["prediction"] != web_fixtures.REACT_GOLD:
      problems.append(f"ReAct answer {trajectory['prediction']!r} ({trajectory['finish_reason']}), "
                      f"expected {web_fixtures.REACT_GOLD}: {react['page_text']!r}")
    if react["answer"] != f"Answer: {trajectory['prediction']}":
      problems.append(f"the page shows {react['answer']!r} as the answer")
    want = web_fixtures.REACT_TRAJECTORY
    for field in ("thoughts", "actions", "observations", "prediction", "finish_reason", "text"):
      if want is not None and trajectory[field] != want[field]:
        problems.append(f"ReAct {field} differ from Python's agent: page {trajectory[field]!r}, "
                        f"Python {want[field]!r}")

  if not screenshot.exists() or screenshot.stat().st_size < 20_000:
    problems.append(f"screenshot {screenshot} is missing or blank")
  elif screenshot.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
    problems.append(f"{screenshot} is not a PNG")

  chat = seen.get("chat")
  if chat:
    first, second = chat
    speed = {k: first[k] for k in ("prefill_tokens_per_second", "decode_tokens_per_second",
                                   "prefill_tokens", "decode_steps")}
    (tmp_path / "web_speed.json").write_text(json.dumps(dict(speed, variant="f32", threads=1), indent=1))
    print(f"page tokens/s ({tmp_path / 'web_speed.json'}): {speed}; replies {[c['text'] for c in chat]}")
    if not (first["prefill_tokens_per_second"] > 0 and first["decode_tokens_per_second"] > 0):
      problems.append(f"the status line shows no tokens/s: {first['status']!r}")
    if not all(c["text"].strip() for c in chat):
      problems.append(f"an empty chat reply: {chat}")
    # The cache holds the first prompt and every reply token it fed back (decode_steps); the
    # reply's retokenisation may differ at its end by a token or two.
    new_tokens = second["prompt_tokens"] - first["prompt_tokens"] - first["decode_steps"]
    if second["prefill_tokens"] > new_tokens + 2:
      problems.append(f"the second chat turn prefilled {second['prefill_tokens']} of its "
                      f"{second['prompt_tokens']} tokens; about {new_tokens} are new (cache not reused)")
  assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_page_runs_our_own_model_format(browser_node, tmp_path, tiny_tokenizer):
  """Our own models' side of the page: a random 2-layer model exported with a SentencePiece
  tokenizer (byte fallback) and plain-text template. The page encodes text as Python does and its
  greedy ids equal JAX's; a ReAct episode with the bundle's docs.json (search, lookup) runs to the
  trajectory Python's agent gives, through several steps of KV-cache reuse."""
  import jax
  import numpy as np
  from eval import lm as eval_lm
  from eval import data
  from eval.react import stores
  from export import tokenizer_json, web_bundle
  from input_pipeline import hf_tokenizer
  from models import transformer
  try:
    data.data_dir()  # docs.json is built from HotpotQA paragraphs in the data dir
  except FileNotFoundError:
    pytest.skip("eval data dir not found")
  config = config_lib.base_config()
  config.model = model_config(vocab_size=400, num_layers=2, embed_dim=64, num_heads=4,
                                     num_kv_heads=2, head_dim=16, mlp_dim=128, init_std=0.5)
  params = jax.tree.map(np.asarray, transformer.init_params(config.model, 0))
  graphdef, _ = transformer.split_model(transformer.abstract_model(config.model))
  bundle = web_bundle.write(config, params, tiny_tokenizer, str(tmp_path / "web"), name="tiny",
                            variants=("f32",), docs="distractor:0", max_seq_len=4096)
  manifest = json.loads((tmp_path / "web" / "manifest.json").read_text())
  assert manifest["chat_template"] == "plain"
  assert manifest["react"]["tools"] == ["calculate", "search", "lookup"]
  manifest["react"]["max_steps"] = 2  # a random model never finishes: two steps are quicker
  (tmp_path / "web" / "manifest.json").write_text(json.dumps(manifest))

  prompts = ("The king said to the queen", "café Straße 小さな 🌊")  # the emoji: byte pieces
  expected = _greedy_ids(graphdef, params, tiny_tokenizer, prompts, 12)
  # Python's agent with the tokenizer.json the page reads: a random model writes invalid UTF-8
  # byte runs, which `tokenizers` and SentencePiece decode differently (U+FFFD per byte of the
  # run, or per invalid byte).
  tokenizer = hf_tokenizer.HFTokenizer(tokenizer_json.from_sentencepiece(tiny_tokenizer),
                                       tiny_tokenizer.bos_id, tiny_tokenizer.eos_id, tiny_tokenizer.pad_id)
  question = "Which sea did the whale swim in?"
  store = stores.load_spec("distractor:0", data.data_dir())[0]
  episode = web_fixtures.python_episode(manifest["react"], question, store=store)
  eval_lm.LM(graphdef, params, tokenizer, "tiny", max_length=4096, agent_batch_size=1).run_episodes(
      manifest["react"]["prompt"], [episode])

  with _Server(bundle) as server:
    seen = _run_page(browser_node, server.url, {
        "parity": {"prompts": [{"text": p, "n": 12} for p in prompts]},
        "react": {"question": question}, "canary": False}, tmp_path)
  assert not seen["errors"] and not seen["blocked"], seen
  for prompt, got, want in zip(prompts, seen["parity"], expected):
    assert got["ids"] == tiny_tokenizer.encode(prompt), prompt
    assert got["greedy"] == want, prompt
  got = seen["react"]["trajectory"]
  for field in ("thoughts", "actions", "observations", "prediction", "finish_reason", "text"):
    assert got[field] == episode.trajectory[field], field
  assert len(seen["react"]["actions"]) == len(got["actions"]) == 2


def _bad_bundles(root, tokenizer):
  """Bundles that must each end in a clear message: {name: (manifest URL path, message regex)}."""
  rng = random.Random(0)
  model = rng.randbytes(1 << 20)  # what a model file's bytes are does not matter before parsing
  onnx_head = b"\x08\x08\x12\x06frugal" + rng.randbytes(4096)  # protobuf-looking, then garbage
  sha = lambda data: hashlib.sha256(data).hexdigest()
  tokenizer_text = tokenizer.to_str()
  base = {"frugal_web": 1, "name": "bad", "num_layers": 2, "num_kv_heads": 1, "head_dim": 8,
          "vocab_size": tokenizer.get_vocab_size(), "max_seq_len": 64, "bos_id": None,
          "eos_ids": [2], "chat_template": "plain",
          "tokenizer": {"file": "tokenizer.json", "bytes": len(tokenizer_text.encode()),
                        "sha256": sha(tokenizer_text.encode())}}
  entry = lambda data, **over: dict({"name": "f32", "file": "model-f32.onnx", "bytes": len(data),
                                     "sha256": sha(data)}, **over)
  cases = {  # name: (bytes of model-f32.onnx or None, manifest models entry, expected message)
      "missing": (None, entry(model), r"model-f32\.onnx: HTTP 404"),
      "truncated": (model[:300_000], entry(model),
                    r"model-f32\.onnx is truncated: 300000 bytes, but manifest\.json says 1048576"),
      "corrupt_same_size": (rng.randbytes(len(model)), entry(model),
                            r"model-f32\.onnx is corrupt: its SHA-256"),
      "corrupt_longer": (model + b"x" * 1000, entry(model), r"model-f32\.onnx is too long"),
      "not_a_model": (model, entry(model), r"onnxruntime could not load model-f32\.onnx"),
      "truncated_protobuf": (onnx_head, entry(onnx_head), r"onnxruntime could not load model-f32\.onnx"),
  }
  urls = {}
  for name, (data, model_entry, message) in cases.items():
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "tokenizer.json").write_text(tokenizer_text)
    if data is not None:
      (directory / "model-f32.onnx").write_bytes(data)
    (directory / "manifest.json").write_text(json.dumps(dict(base, models=[model_entry])))
    urls[name] = (f"model/{name}/manifest.json", message)
  (root / "not_json").mkdir()
  (root / "not_json" / "manifest.json").write_text("{\"frugal_web\": 1, ")
  urls["manifest_not_json"] = ("model/not_json/manifest.json", r"manifest\.json is not valid JSON")
  urls["no_manifest"] = ("model/nowhere/manifest.json", r"manifest\.json: HTTP 404")
  urls["not_a_bundle"] = ("model/manifest.json", r"manifest\.json: field frugal_web is undefined; expected 1")
  return urls


def test_page_shows_clear_errors_for_bad_bundles(browser_node, tmp_path, tiny_tokenizer):
  """A truncated, corrupt, oversized, unparseable or missing model file (or manifest): the page's
  error box says what is wrong within 30 s, and the page never hangs."""
  from export import tokenizer_json
  root = tmp_path / "bundles"
  root.mkdir()
  (root / "manifest.json").write_text("{}")  # serve.py wants one at the top; not a bundle
  cases = _bad_bundles(root, tokenizer_json.from_sentencepiece(tiny_tokenizer))
  with _Server(root) as server:
    seen = _run_page(browser_node, server.url, {"bad": [
        {"name": name, "manifest": url, "timeout_ms": 30_000} for name, (url, _) in cases.items()]},
                     tmp_path, timeout_s=400)
  assert not seen["errors"] and not seen["blocked"], seen
  got = {row["name"]: row for row in seen["bad"]}
  problems = []
  for name, (_, message) in cases.items():
    row = got[name]
    if row["error"] is None:
      problems.append(f"{name}: no error shown in 30 s (status {row['status']!r})")
    elif not re.search(message, row["error"]):
      problems.append(f"{name}: {row['error']!r} does not say {message!r}")
  assert not problems, "\n".join(problems)


def test_serve_refuses_a_missing_bundle(tmp_path):
  run = subprocess.run([sys.executable, os.path.join(WEB, "serve.py"), f"--bundle={tmp_path}", "--port=0"],
                       capture_output=True, text=True, timeout=60, check=False)
  assert run.returncode != 0
  assert "holds no manifest.json" in run.stderr and "python -m export" in run.stderr, run.stderr
