"""Every script in bench/ runs end to end as a subprocess, in a tiny configuration, and writes its
figures: train_bench.py on configs/llama.py:runlocal=True, the others on a random 2-layer model
exported to a Hugging Face directory. Output goes under tmp_path (never bench/results.jsonl), from a
working directory there.

Skipped without what a script needs: the eval data dir (export_table.py's prompt and quality
columns, eval_build.py's task); node, web/node_modules and chromium (web_speed.py; under CI a failure, as in
tests/test_web.py); a llama.cpp build (llamacpp_parity.py: llama-completion in $LLAMA_CPP_BIN, on
PATH, or in /tmp/lcb/bin as reports/export_llamacpp.md builds it).
"""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB = os.path.join(REPO, "web")
CHROMIUM = "/usr/bin/chromium"
NEW_TOKENS = 4


def _run(script, *args, cwd, timeout=300):
  """stdout of `python bench/SCRIPT ARGS`, on the host's real CPU devices (not conftest's 8)."""
  flags = os.environ.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count=8", "")
  run = subprocess.run([sys.executable, os.path.join(REPO, "bench", script), *args], cwd=cwd,
                       env=dict(os.environ, XLA_FLAGS=flags.strip()), capture_output=True,
                       text=True, timeout=timeout, check=False)
  assert run.returncode == 0, f"{script} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
  return run.stdout


def _data_dir():
  from eval import data
  try:
    return data.data_dir()
  except FileNotFoundError:
    pytest.skip("eval data dir not found")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_tokenizer):
  """(config, params, tokenizer, Hugging Face directory) of a random 2-layer model."""
  import jax
  import numpy as np
  from export import hf
  from models import transformer
  from models.config import model_config
  from training import config as config_lib
  config = config_lib.base_config()
  config.model = model_config(vocab_size=400, num_layers=2, embed_dim=64, num_heads=4,
                              num_kv_heads=2, head_dim=16, mlp_dim=128, init_std=0.5)
  params = jax.tree.map(np.asarray, transformer.init_params(config.model, 0))
  directory = hf.write(config, params, tiny_tokenizer, str(tmp_path_factory.mktemp("tiny") / "hf"))
  return config, params, tiny_tokenizer, directory


@pytest.mark.slow
def test_train_bench_writes_one_record_per_preset(tmp_path):
  out = tmp_path / "results.jsonl"
  preset = os.path.join(REPO, "configs", "llama.py") + ":runlocal=True"
  stdout = _run("train_bench.py", f"--presets={preset}", "--steps=2", f"--out={out}", cwd=tmp_path)
  (record,) = [json.loads(line) for line in out.read_text().splitlines()]
  assert record["preset"] == preset and (record["batch_size"], record["seq_len"]) == (8, 64)
  assert record["tokens_per_second"] > 0 and record["step_seconds"] > 0
  assert record["compile_seconds"] > 0 and "mfu" in record and record["command"]
  assert "tokens/s" in stdout and "MFU" in stdout


@pytest.mark.slow
def test_export_table_makes_its_rows(tmp_path, tiny_model):
  data_dir = _data_dir()
  *_, model = tiny_model
  formats = ("hf", "gguf-q8_0", "onnx")  # each runtime once; quality for f32 and q8_0
  out = tmp_path / "table"
  stdout = _run("export_table.py", f"--model={model}", f"--out={out}", f"--data_dir={data_dir}",
                f"--formats={','.join(formats)}", "--prompt_tokens=16",
                f"--new_tokens={NEW_TOKENS}", "--limit=2", f"--web_results={tmp_path / 'none'}",
                cwd=tmp_path)
  results = json.loads((out / "results.json").read_text())
  rows = {r["format"]: r for r in results["rows"]}
  assert tuple(rows) == formats and results["new_tokens"] == NEW_TOKENS
  for r in rows.values():
    assert r["bytes"] > 0 and math.isfinite(r["bpb"]) and 0 <= r["acc"] <= 1
  # transformers and onnxruntime decode our f32 weights: JAX's greedy tokens, every one.
  assert rows["hf"]["greedy_agree"] == rows["onnx"]["greedy_agree"] == NEW_TOKENS
  assert rows["hf"]["native_decode"] > 0 and rows["onnx"]["native_prefill"] > 0
  assert rows["gguf-q8_0"]["native_decode"] is None  # no --llama_bench: no llama.cpp figures
  assert rows["gguf-q8_0"]["bpb"] != rows["hf"]["bpb"]  # quantised weights, their own quality
  table = (out / "table.md").read_text()
  assert all(f"| {f} |" in table for f in formats) and table.strip() in stdout


def test_eval_build_times_both_modes(tmp_path, tiny_model):
  data_dir = _data_dir()
  *_, model = tiny_model
  out = tmp_path / "results.jsonl"
  stdout = _run("eval_build.py", f"--model={model}", "--tasks=arc_easy", "--limit=2",
                "--evaluations=2", "--max_length=256", f"--data_dir={data_dir}", f"--out={out}",
                cwd=tmp_path)
  (record,) = [json.loads(line) for line in out.read_text().splitlines()]
  assert record["bench"] == "eval_build" and record["metrics_equal"] is True
  assert [len(record["seconds"][m]) for m in ("rebuilt", "built_once")] == [2, 2]
  assert record["saved_seconds_per_evaluation"] is not None and "scores identical" in stdout


def _require(ok, what):
  """Skips locally, fails under CI (tests/test_web.py's rule: CI must run the browser)."""
  if ok:
    return
  if os.environ.get("CI"):
    pytest.fail(f"{what}; CI must run the web benchmarks (.ci/run installs chromium and "
                "web/node_modules)")
  pytest.skip(what)


def test_web_speed_times_each_variant_in_chromium(tmp_path, tiny_model):
  _require(shutil.which("node"), "node is not installed")
  _require(os.path.isfile(os.path.join(WEB, "node_modules", "playwright-core", "package.json")),
           "web/node_modules is missing: cd web && npm ci --ignore-scripts")
  _require(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: apt-get install -y chromium")
  from export import web_bundle
  config, params, tokenizer, _ = tiny_model
  bundle = web_bundle.write(config, params, tokenizer, str(tmp_path / "web"), name="tiny",
                            variants=("f32",), docs="")
  out = tmp_path / "results.jsonl"
  stdout = _run("web_speed.py", f"--bundle={bundle}", "--prompt_tokens=8",
                f"--new_tokens={NEW_TOKENS}", f"--out={out}", cwd=tmp_path)
  (record,) = [json.loads(line) for line in out.read_text().splitlines()]
  assert (record["bench"], record["model"], record["variant"]) == ("web_speed", "tiny", "f32")
  assert (record["prefill_tokens"], record["decode_tokens"]) == (8, NEW_TOKENS)
  assert record["prefill_tokens_per_second"] > 0 and record["decode_tokens_per_second"] > 0
  assert record["browser"] and "decode 4 tok" in stdout


def _llama_bin():
  candidates = [os.environ.get("LLAMA_CPP_BIN", ""), "/tmp/lcb/bin"]
  found = shutil.which("llama-completion")
  candidates.append(os.path.dirname(found) if found else "")
  for directory in filter(None, candidates):
    if os.access(os.path.join(directory, "llama-completion"), os.X_OK):
      return directory
  pytest.skip("llama.cpp's llama-completion not found: build it (reports/export_llamacpp.md) and "
              "set $LLAMA_CPP_BIN to its bin directory")


def test_llamacpp_parity_reports_each_gguf_type(tmp_path, tiny_model):
  llama_bin = _llama_bin()
  from export import gguf_file
  config, params, tokenizer, model = tiny_model
  for weights in ("f16", "q8_0", "q4_0"):
    gguf_file.write(config, params, tokenizer, str(tmp_path / f"model-{weights}.gguf"), weights)
  stdout = _run("llamacpp_parity.py", f"--llama_bin={llama_bin}", f"--exports={model}:{tmp_path}",
                "--prompt=The king said", f"--new_tokens={NEW_TOKENS}", cwd=tmp_path)
  for weights in ("f16", "q8_0", "q4_0"):
    assert f"{model} {weights}: same greedy text for " in stdout, stdout
