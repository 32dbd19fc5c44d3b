r"""The export table (reports/README.md) for one model: each format's file size, tokens/s in its native
runtime and in the browser, and quality relative to float32.

  python bench/export_table.py --model=smollm2-135m-instruct --out=reports/export_smollm2
  python bench/export_table.py --model=runs/tiny --out=reports/export_tiny
  python bench/export_table.py --model=runs/tiny --out=/tmp/t --formats=hf,onnx --limit=2   # a few rows

Per format:
  size        the exported file (Hugging Face: model.safetensors)
  native      tokens/s of a --prompt_tokens prefill and --new_tokens greedy decode steps at ONE
              thread (the page's default), in the format's own runtime: transformers (torch) for
              Hugging Face, onnxruntime for ONNX, llama.cpp's llama-bench for GGUF when
              --llama_bench names the binary (build llama.cpp yourself; PyPI has no binary), else
              "-". "greedy = JAX f32": how many decoded tokens, from the first, equal our JAX
              model's greedy tokens on the float32 weights (llama-bench decodes no text: "-").
  browser     the same figures from bench/web_speed.py's records (--web_results), ONNX only
  quality     held-out bits per byte (eval task --bpb_task) and --task accuracy (first --limit
              rows), computed by our JAX model on exactly the weights each format stores (int8:
              quantised and expanded per channel; GGUF: the file's blocks dequantised), so the
              column is the quantisation's cost and nothing else.
Writes OUT/table.md and OUT/results.json, and prints the table.
"""

import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import app, flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "Anything training.model_source.load reads.")
_OUT = flags.DEFINE_string("out", None, "Output directory (exports go to OUT/files).")
_PROMPT_TOKENS = flags.DEFINE_integer("prompt_tokens", 256, "Tokens in the timed prefill.")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 64, "Timed greedy decode steps.")
_BPB_TASK = flags.DEFINE_string("bpb_task", "bpb_tinyshakespeare", "Held-out bits-per-byte task.")
_TASK = flags.DEFINE_string("task", "arc_easy", "Benchmark task for the quality column.")
_LIMIT = flags.DEFINE_integer("limit", 100, "First N rows of --task.")
_WEB_RESULTS = flags.DEFINE_string("web_results", "bench/results.jsonl", "bench/web_speed.py's records.")
_LLAMA_BENCH = flags.DEFINE_string("llama_bench", "",
                                   "llama.cpp's llama-bench binary, for the GGUF rows' native speed.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Eval data dir; empty: $FRUGAL_DATA_DIR, else ../shared/data.")
_FORMATS = flags.DEFINE_list("formats", [], "Rows to make (names from FORMATS); empty: all of them.")
flags.mark_flags_as_required(["model", "out"])

# (format, file under OUT/files, weights the runtime computes with)
FORMATS = (("hf", "hf/model.safetensors", "f32"), ("gguf-f16", "model-f16.gguf", "f16"),
           ("gguf-q8_0", "model-q8_0.gguf", "q8_0"), ("gguf-q4_0", "model-q4_0.gguf", "q4_0"),
           ("onnx", "model-f32.onnx", "f32"), ("onnx-int8", "model-int8.onnx", "int8"))


def prompt_ids(tokenizer, n):
  """A fixed, real prompt of exactly n tokens (tinyshakespeare's opening, repeated if short)."""
  from eval import data
  with open(data.path(data.data_dir(_DATA_DIR.value), "pretrain_text/tinyshakespeare/input.txt")) as f:
    ids = tokenizer.encode(f.read(20000))
  while len(ids) < n:
    ids = ids + ids
  return ids[:n]


def onnx_speed(path, cfg, ids, new):
  from export import onnx_graph
  sess = onnx_graph.session(path, threads=1)
  onnx_graph.greedy(sess, cfg, ids[:8], 2)  # warm-up
  tokens, _, prefill, decode = onnx_graph.greedy(sess, cfg, ids, new + 1)
  return len(ids) / prefill, new / decode, tokens[:new]


def hf_speed(directory, ids, new):
  import torch
  import transformers
  torch.set_num_threads(1)
  model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
  with torch.no_grad():
    model(torch.tensor([ids[:8]]))  # warm-up
    start = time.perf_counter()
    out = model(torch.tensor([ids]), use_cache=True)
    prefill = time.perf_counter() - start
    cache, tokens = out.past_key_values, [int(out.logits[0, -1].argmax())]
    start = time.perf_counter()
    for _ in range(new):
      out = model(torch.tensor([[tokens[-1]]]), past_key_values=cache, use_cache=True)
      cache = out.past_key_values
      tokens.append(int(out.logits[0, -1].argmax()))
    decode = time.perf_counter() - start
  return len(ids) / prefill, new / decode, tokens[:new]


def gguf_speed(path, ids, new):
  """llama.cpp's own figures (llama-bench -p N -n M -t 1), when --llama_bench names the binary."""
  if not _LLAMA_BENCH.value:
    return None
  binary = _LLAMA_BENCH.value
  env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(os.path.abspath(binary)))
  run = subprocess.run([binary, "-m", path, "-p", str(len(ids)), "-n", str(new), "-t", "1", "-r", "2",
                        "-o", "json"], capture_output=True, text=True, env=env, check=True)
  rates = {(r["n_prompt"] > 0): r["avg_ts"] for r in json.loads(run.stdout)}
  return rates[True], rates[False], None


def quality(graphdef, params, tokenizer, name):
  from eval import data, suite
  from eval.lm import LM
  lm = LM(graphdef, params, tokenizer, name)
  results = suite.run(lm, [_BPB_TASK.value, _TASK.value], data.data_dir(_DATA_DIR.value),
                      limits={_TASK.value: _LIMIT.value})
  return {"bpb": results[0]["metrics"]["bpb"], "acc": results[1]["metrics"]["acc"],
          "acc_norm": results[1]["metrics"].get("acc_norm")}


def browser_speeds(bundle_name):
  """{variant: record} of the newest web_speed records for a bundle of this model."""
  found = {}
  if not os.path.exists(_WEB_RESULTS.value):
    return found
  with open(_WEB_RESULTS.value) as f:
    for line in f:
      record = json.loads(line)
      if record.get("bench") == "web_speed" and record.get("model") == bundle_name:
        found[record["variant"]] = record
  return found


def main(argv):
  del argv
  from export.exporter import export
  from training import model_source, run_info
  unknown = set(_FORMATS.value) - {f for f, _, _ in FORMATS}
  if unknown:
    sys.exit(f"error: --formats {sorted(unknown)} not in {[f for f, _, _ in FORMATS]}")
  formats = [row for row in FORMATS if not _FORMATS.value or row[0] in _FORMATS.value]
  files = os.path.join(_OUT.value, "files")
  name = os.path.basename(os.path.normpath(_MODEL.value))
  export(_MODEL.value, [f for f, _, _ in formats], files, name=name)
  config, graphdef, params, tokenizer = model_source.load(_MODEL.value)
  cfg = config.model
  ids = prompt_ids(tokenizer, _PROMPT_TOKENS.value)
  new = _NEW_TOKENS.value

  from export import parity
  jax_tokens = parity.jax_greedy(cfg, params, ids, new)[0]
  browser = browser_speeds(name)
  rows = []
  qualities = {"f32": quality(graphdef, params, tokenizer, f"{name}-f32")}  # the "vs f32" reference
  for fmt, file, weights in formats:
    path = os.path.join(files, file)
    start = time.time()
    if fmt == "hf":
      native, runtime = hf_speed(os.path.dirname(path), ids, new), "transformers"
    elif fmt.startswith("gguf"):
      native, runtime = gguf_speed(path, ids, new), "llama.cpp"
    else:
      native, runtime = onnx_speed(path, cfg, ids, new), "onnxruntime"
    if weights not in qualities:
      qualities[weights] = quality(graphdef, parity.reference_params(cfg, params, weights),
                                   tokenizer, f"{name}-{weights}")
    web = browser.get("int8" if fmt == "onnx-int8" else "f32") if fmt.startswith("onnx") else None
    agree = None
    if native and native[2] is not None:
      agree = next((i for i, (a, b) in enumerate(zip(native[2], jax_tokens)) if a != b), len(jax_tokens))
    rows.append(dict(format=fmt, file=file, bytes=os.path.getsize(path), weights=weights,
                     runtime=runtime, native_prefill=native and native[0], native_decode=native and native[1],
                     greedy_agree=agree, browser_prefill=web and web["prefill_tokens_per_second"],
                     browser_decode=web and web["decode_tokens_per_second"], **qualities[weights]))
    print(f"{fmt}: {time.time() - start:.0f} s", flush=True)
  f32 = qualities["f32"]
  lines = [f"{name}: prefill {len(ids)} tokens, decode {new}, 1 thread; quality: {_BPB_TASK.value} "
           f"and {_TASK.value} (first {_LIMIT.value}), JAX on each format's weights",
           "", "| format | size | native runtime | native prefill / decode tok/s | greedy = JAX f32 | "
           "browser prefill / decode tok/s | bpb (vs f32) | acc (vs f32) |", "|---" * 8 + "|"]
  fmt_speed = lambda a, b: "-" if a is None else f"{a:.0f} / {b:.1f}"
  for r in rows:
    agree = "-" if r["greedy_agree"] is None else f"{r['greedy_agree']}/{new}"
    lines.append(
        f"| {r['format']} | {r['bytes'] / 1e6:.1f} MB | {r['runtime']} | "
        f"{fmt_speed(r['native_prefill'], r['native_decode'])} | {agree} | "
        f"{fmt_speed(r['browser_prefill'], r['browser_decode'])} | {r['bpb']:.4f} ({r['bpb'] - f32['bpb']:+.4f}) | "
        f"{r['acc']:.2f} ({r['acc'] - f32['acc']:+.2f}) |")
  table = "\n".join(lines)
  print(table)
  with open(os.path.join(_OUT.value, "table.md"), "w") as f:
    f.write(table + "\n")
  with open(os.path.join(_OUT.value, "results.json"), "w") as f:
    json.dump(dict(model=_MODEL.value, prompt_tokens=len(ids), new_tokens=new, rows=rows,
                   commit=run_info.git_commit(), command=" ".join(sys.argv)), f, indent=1)


if __name__ == "__main__":
  app.run(main)
