r"""Tokens per second of the in-browser page: prefill and greedy decode of each model variant of a
web bundle in headless Chromium (onnxruntime-web, WASM, 1 thread by default).

  python -m export --model=smollm2-135m-instruct --format=web --out=exports/smollm2
  (cd web && npm ci --ignore-scripts)
  python bench/web_speed.py --bundle=exports/smollm2/web
  python bench/web_speed.py --bundle=exports/smollm2/web --variants=f32 --threads=2

Starts web/serve.py on the bundle, loads each variant in a fresh page and times one prefill
of --prompt_tokens tokens and --new_tokens decode steps (after a short warm-up), through the
page's own LM (web/js/lm.js). Prints one line per variant and appends the figures, browser,
commit and command to bench/results.jsonl (or --out).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import app, flags  # noqa: E402

CHROMIUM = "/usr/bin/chromium"

_BUNDLE = flags.DEFINE_string("bundle", None,
                              "The web bundle: DIR/web from python -m export --format=web --out=DIR.")
_VARIANTS = flags.DEFINE_list("variants", [], "Model variants to time (manifest names); empty: all.")
_PROMPT_TOKENS = flags.DEFINE_integer("prompt_tokens", 256, "Tokens in the timed prefill.")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 64, "Timed decode steps.")
_THREADS = flags.DEFINE_integer("threads", 1, "WASM threads (the page's ?threads=).")
_DEVICE = flags.DEFINE_string("device", "wasm", "wasm | webgpu | auto (headless Chromium here has no GPU).")
_OUT = flags.DEFINE_string("out", "bench/results.jsonl", "Where results are appended.")
flags.mark_flags_as_required(["bundle"])


def _chromium_version():
  try:
    return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
  except OSError:
    return None


def main(argv):
  del argv
  from training.run_info import git_commit
  node = shutil.which("node")
  if node is None or not os.access(CHROMIUM, os.X_OK):
    sys.exit(f"error: needs node and {CHROMIUM} (apt-get install -y chromium)")
  if not os.path.isfile(os.path.join(_BUNDLE.value, "manifest.json")):
    sys.exit(f"error: {_BUNDLE.value} holds no manifest.json (python -m export --format=web --out=DIR "
             "writes DIR/web)")
  with open(os.path.join(_BUNDLE.value, "manifest.json")) as f:
    manifest = json.load(f)
  variants = _VARIANTS.value or [m["name"] for m in manifest["models"]]
  server = subprocess.Popen([sys.executable, os.path.join(REPO, "web", "serve.py"),
                             f"--bundle={_BUNDLE.value}", "--port=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    url = re.search(r"http://127\.0\.0\.1:\d+/", server.stdout.readline())
    if url is None:
      sys.exit(f"error: web/serve.py did not start: {server.communicate()[1]}")
    with tempfile.TemporaryDirectory() as tmp:
      config = {"base_url": url.group(0), "out": os.path.join(tmp, "out.json"), "chromium": CHROMIUM,
                "query": f"device={_DEVICE.value}&threads={_THREADS.value}", "timeout_ms": 900_000,
                "cases": {"speed": {"variants": variants, "prompt_tokens": _PROMPT_TOKENS.value,
                                    "new_tokens": _NEW_TOKENS.value}}}
      with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f)
      run = subprocess.run([node, os.path.join(REPO, "web", "tests", "page.mjs"),
                            os.path.join(tmp, "config.json")], capture_output=True, text=True, check=False)
      if run.returncode != 0:
        sys.exit(f"error: the browser run failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
      with open(config["out"]) as f:
        seen = json.load(f)
  finally:
    server.terminate()
    server.communicate(timeout=10)
  if seen["errors"] or seen["blocked"]:
    sys.exit(f"error: {seen['errors']} (requests to other hosts: {seen['blocked']})")
  browser, commit = _chromium_version(), git_commit()
  with open(_OUT.value, "a") as f:
    for row in seen["speed"]:
      print(f"{manifest['name']} {row['variant']:5s} {row['device']} {row['threads']} thread(s): "
            f"prefill {row['prefill_tokens']} tok {row['prefill_tokens_per_second']:.1f} tok/s, "
            f"decode {row['decode_tokens']} tok {row['decode_tokens_per_second']:.1f} tok/s "
            f"(load {row['load_s']:.1f} s)")
      f.write(json.dumps(dict(row, bench="web_speed", model=manifest["name"], browser=browser,
                              commit=commit, command=" ".join(sys.argv))) + "\n")


if __name__ == "__main__":
  app.run(main)
