"""Exports (export/): each format, run by its reference runtime, gives our JAX model's greedy tokens
and logits. Reference runtimes: transformers (Hugging Face), onnxruntime (ONNX), the gguf reader
with our dequantising importer (GGUF; plus a check of llama.cpp's interleaved rotary convention
done independently of our importer). Quantised exports are compared with our model run on the
same quantised-and-expanded weights, so the tolerances stay those of float32 arithmetic.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from models.config import model_config
from training import config as config_lib
from export import gguf_file, hf, onnx_graph, quant, tokenizer_json, weights as weights_lib
from export.exporter import export as run_export
from export.parity import jax_greedy, reference_params
from models import llama_import, transformer
from training import model_source

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGIT_TOL = 2e-4  # float32, different op order (einsum vs MatMul/Gemm); logits are O(1-10)
PROMPTS = ("The king said to the queen", "doc 3 line 7: the sea", "café Straße 小さな")


def _config(**model):
  c = config_lib.base_config()
  c.seq_len = 64
  fields = dict(vocab_size=400, num_layers=2, embed_dim=64, num_heads=4, num_kv_heads=2,
                head_dim=16, mlp_dim=128, init_std=0.5)
  c.model = model_config(**{**fields, **model})
  return c


def _params(cfg, seed=0):
  return jax.tree.map(np.asarray, transformer.init_params(cfg, seed))


def _assert_same(got_tokens, got_logits, want_tokens, want_logits, tol=LOGIT_TOL):
  assert got_tokens == want_tokens
  for step, (a, b) in enumerate(zip(got_logits, want_logits)):
    err = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    assert err < tol, f"step {step}: logits differ by {err}"


# ----------------------------------------------------------------------------------------- ONNX

@pytest.mark.parametrize("model,weights", [
    (dict(), "f32"),
    (dict(), "int8"),
    (dict(block="palm", norm="layer", num_kv_heads=1, tie_embeddings=True, scan_layers=False), "f32"),
    (dict(num_kv_heads=4, tie_embeddings=True), "int8"),
], ids=["llama-gqa-f32", "llama-gqa-int8", "palm-mqa-tied-unrolled-f32", "llama-mha-tied-int8"])
def test_onnx_greedy_and_logits_match_jax(tmp_path, tiny_tokenizer, model, weights):
  cfg = _config(**model).model
  params = _params(cfg)
  path = onnx_graph.save(onnx_graph.build(cfg, params, weights),
                         str(tmp_path / "m.onnx"))
  sess = onnx_graph.session(path)
  reference = reference_params(cfg, params, weights)
  for prompt in PROMPTS:
    ids = tiny_tokenizer.encode(prompt)
    tokens, logits, _, _ = onnx_graph.greedy(sess, cfg, ids, 8)
    _assert_same(tokens, logits, *jax_greedy(cfg, reference, ids, 8))


def test_onnx_int8_is_smaller_and_close(tmp_path):
  cfg = _config(vocab_size=4096, embed_dim=128, mlp_dim=512).model
  params = _params(cfg)
  f32 = onnx_graph.save(onnx_graph.build(cfg, params, "f32"), str(tmp_path / "f.onnx"))
  int8 = onnx_graph.save(onnx_graph.build(cfg, params, "int8"), str(tmp_path / "i.onnx"))
  assert os.path.getsize(int8) < 0.3 * os.path.getsize(f32)
  ids = list(range(5, 25))
  a = onnx_graph.greedy(onnx_graph.session(f32), cfg, ids, 1)[1][0]
  b = onnx_graph.greedy(onnx_graph.session(int8), cfg, ids, 1)[1][0]
  assert 0 < np.max(np.abs(a - b)) < 0.05 * np.max(np.abs(a))  # quantised: close, not equal


def test_int8_quantiser_bounds():
  w = np.random.default_rng(0).normal(size=(64, 48)).astype(np.float32)
  q, scale = quant.int8_quantise(w, 1)
  assert q.dtype == np.int8 and scale.shape == (48,) and np.abs(q).max() == 127
  assert np.max(np.abs(quant.int8_dequantise(q, scale, 1) - w) / scale) <= 0.5 + 1e-6


# ------------------------------------------------------------------------------ Hugging Face

def test_hf_export_runs_in_transformers(tmp_path, tiny_tokenizer):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  config = _config()
  cfg = config.model
  params = _params(cfg)
  out = hf.write(config, params, tiny_tokenizer, str(tmp_path / "hf"))
  assert sorted(os.listdir(out)) == ["config.json", "generation_config.json", "model.safetensors",
                                     "tokenizer.json", "tokenizer.model", "tokenizer_config.json"]
  model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
  tok = transformers.AutoTokenizer.from_pretrained(out)
  for prompt in PROMPTS:
    ids = tiny_tokenizer.encode(prompt)
    assert tok(prompt, add_special_tokens=False).input_ids == ids
    want_tokens, want_logits = jax_greedy(cfg, params, ids, 6)
    with torch.no_grad():
      generated = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                                 output_logits=True, return_dict_in_generate=True,
                                 pad_token_id=0, eos_token_id=None)
    got = generated.sequences[0, len(ids):].tolist()
    _assert_same(got, [l[0].numpy() for l in generated.logits], want_tokens, want_logits)  # noqa: E741
  # Our importer reads the export back to the same weights.
  _, _, again, _ = model_source.load(out)
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, again), params)


def test_sentencepiece_tokenizer_json_encodes_like_sentencepiece(tiny_tokenizer, corpus_dir):
  tok = tokenizer_json.from_sentencepiece(tiny_tokenizer)
  texts = [p.read_text(encoding="utf-8") for p in sorted(corpus_dir.glob("*.txt"))]
  texts += ["  indented\n\n\tTabs   and  runs", "naïve café 東京 🙂 x", "12345 6.78", "<s></s><unk>"]
  for text in texts:
    assert tok.encode(text, add_special_tokens=False).ids == tiny_tokenizer.encode(text)
    assert tok.decode(tiny_tokenizer.encode(text)) == text


# -------------------------------------------------------------------------------------- GGUF

def _rope_half(x, pos, theta=10000.0):
  half = x.shape[-1] // 2
  angle = pos * theta ** (-np.arange(half) / half)
  x1, x2 = x[..., :half], x[..., half:]
  return np.concatenate([x1 * np.cos(angle) - x2 * np.sin(angle), x2 * np.cos(angle) + x1 * np.sin(angle)], -1)


def _rope_interleaved(x, pos, theta=10000.0):
  """llama.cpp's "normal" rope: pairs (2i, 2i+1) rotated by pos * theta^(-2i/d)."""
  half = x.shape[-1] // 2
  angle = pos * theta ** (-np.arange(half) / half)
  even, odd = x[..., 0::2], x[..., 1::2]
  out = np.empty_like(x)
  out[..., 0::2] = even * np.cos(angle) - odd * np.sin(angle)
  out[..., 1::2] = even * np.sin(angle) + odd * np.cos(angle)
  return out


def test_gguf_rotary_permutation_matches_llama_cpp_convention():
  """Scores q.k under llama.cpp's interleaved rope with permuted rows equal ours under
  rotate-half with the original rows (checked without our importer)."""
  rng = np.random.default_rng(0)
  heads, head_dim, embed = 3, 8, 12
  wq, wk = rng.normal(size=(2, heads * head_dim, embed))
  x_q, x_k = rng.normal(size=(2, embed))
  per_head = lambda w, x: (w @ x).reshape(heads, head_dim)
  ours = np.einsum("nh,nh->n", _rope_half(per_head(wq, x_q), 5), _rope_half(per_head(wk, x_k), 2))
  pq, pk = gguf_file.permute_rotary(wq, heads), gguf_file.permute_rotary(wk, heads)
  theirs = np.einsum("nh,nh->n", _rope_interleaved(per_head(pq, x_q), 5), _rope_interleaved(per_head(pk, x_k), 2))
  np.testing.assert_allclose(theirs, ours, rtol=1e-10)
  np.testing.assert_array_equal(llama_import._unpermute_rotary(pq, heads), wq)


@pytest.mark.parametrize("weight_type", quant.GGUF_TYPES)
def test_gguf_export_reads_back(tmp_path, tiny_tokenizer, weight_type):
  import gguf
  config = _config(embed_dim=64, tie_embeddings=weight_type == "q4_0")
  cfg = config.model
  params = _params(cfg)
  path = gguf_file.write(config, params, tiny_tokenizer, str(tmp_path / f"m-{weight_type}.gguf"), weight_type)
  reader = gguf.GGUFReader(path)
  field = lambda key: reader.fields[key].contents()
  assert field("general.architecture") == "llama" and field("llama.block_count") == 2
  assert field("llama.attention.head_count_kv") == 2 and field("tokenizer.ggml.model") == "llama"
  types = {t.name: t.tensor_type.name for t in reader.tensors}
  assert types["blk.0.attn_norm.weight"] == "F32"
  assert types["blk.0.ffn_down.weight"] == weight_type.upper()
  if weight_type == "q4_0":  # tied: the embedding is the output projection, kept at 8 bits
    assert types["token_embd.weight"] == "Q8_0"
  loaded_config, _, loaded, tok = model_source.load(path)
  assert tok.encode(PROMPTS[2]) == tiny_tokenizer.encode(PROMPTS[2])
  reference = reference_params(cfg, params, weight_type)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), b, atol=1e-6), loaded, reference)
  ids = tiny_tokenizer.encode(PROMPTS[0])
  _assert_same(*jax_greedy(loaded_config.model, loaded, ids, 6), *jax_greedy(cfg, reference, ids, 6))


# ------------------------------------------------------------------------------- bad input

def test_formats_refuse_what_they_cannot_hold(tmp_path, tiny_tokenizer):
  palm = _config(block="palm", norm="layer")
  params = _params(palm.model)
  with pytest.raises(weights_lib.UnsupportedModel, match="model.block='palm'"):
    hf.write(palm, params, tiny_tokenizer, str(tmp_path / "hf"))
  with pytest.raises(weights_lib.UnsupportedModel, match="model.block='palm'"):
    gguf_file.write(palm, params, tiny_tokenizer, str(tmp_path / "m.gguf"))
  assert not os.listdir(tmp_path)  # nothing half-written
  scored = _config(score_head=True).model
  with pytest.raises(weights_lib.UnsupportedModel, match="score_head"):
    onnx_graph.build(scored, _params(scored))
  lora = _config(lora_rank=4).model
  with pytest.raises(weights_lib.UnsupportedModel, match="merge the adapters"):
    onnx_graph.build(lora, _params(lora))
  with pytest.raises(ValueError, match="GGUF type 'q3_k'"):
    gguf_file.write(_config(), _params(_config().model), tiny_tokenizer, str(tmp_path / "x.gguf"), "q3_k")


def test_onnx_refuses_models_over_the_protobuf_limit(monkeypatch):
  cfg = _config().model
  monkeypatch.setattr(onnx_graph, "MAX_BYTES", 1000)
  with pytest.raises(weights_lib.UnsupportedModel, match="exceed the 2 GiB a single .onnx file"):
    onnx_graph.build(cfg, _params(cfg))


def test_cli_refuses_unknown_format_and_damaged_files(tmp_path):
  run = subprocess.run([sys.executable, "-m", "export", "--model=smollm2-135m-instruct",
                        "--format=hf,tflite", f"--out={tmp_path}/o"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
  assert run.returncode == 1
  assert "unknown format(s) ['tflite']; supported: hf, gguf-f16" in run.stderr
  assert not os.path.exists(tmp_path / "o")
  bad = tmp_path / "bad.gguf"
  bad.write_bytes(b"GGUF" + os.urandom(64))
  with pytest.raises(ValueError, match="bad.gguf: not a readable GGUF file"):
    model_source.load(str(bad))


def test_cli_exports_every_format_from_a_hf_directory(tmp_path, tiny_tokenizer):
  config = _config()
  params = _params(config.model)
  source = hf.write(config, params, tiny_tokenizer, str(tmp_path / "source"))
  written = run_export(source, ["hf", "gguf-q8_0", "onnx", "onnx-int8", "web"], str(tmp_path / "out"),
                       web_variants=("int8", "f32"), docs="")
  assert sorted(os.listdir(tmp_path / "out")) == ["hf", "model-f32.onnx", "model-int8.onnx",
                                                   "model-q8_0.gguf", "tokenizer.json", "web"]
  with open(os.path.join(written["web"], "manifest.json")) as f:
    manifest = json.load(f)
  assert [m["name"] for m in manifest["models"]] == ["int8", "f32"]
  assert manifest["chat_template"] == "plain" and manifest["eos_ids"] == [tiny_tokenizer.eos_id]
  for entry in manifest["models"] + [manifest["tokenizer"]]:
    assert os.path.getsize(os.path.join(written["web"], entry["file"])) == entry["bytes"]
  ids = tiny_tokenizer.encode(PROMPTS[1])
  tokens = onnx_graph.greedy(onnx_graph.session(os.path.join(written["web"], "model-f32.onnx")),
                             config.model, ids, 5)[0]
  assert tokens == jax_greedy(config.model, params, ids, 5)[0]
  _, _, _, gguf_tok = model_source.load(written["gguf-q8_0"])  # the vocabulary survives hf -> gguf
  for text in PROMPTS:
    assert gguf_tok.encode(text) == tiny_tokenizer.encode(text)


# ---------------------------------------------------------------- SmolLM2-135M-Instruct (real)

SMOL_PROMPTS = ("The capital of France is",
                "<|im_start|>user\nWhat is 12 times 12?<|im_end|>\n<|im_start|>assistant\n",
                "def fibonacci(n):")


@pytest.fixture(scope="module")
def smollm2():
  try:
    return model_source.load("smollm2-135m-instruct")
  except FileNotFoundError as e:
    pytest.skip(str(e))


@pytest.mark.slow
def test_smollm2_exports_give_jax_greedy_tokens(tmp_path, smollm2):
  """The real model: ONNX f32/int8 (onnxruntime), Hugging Face (transformers) and GGUF q8_0
  (reader + our importer) each give JAX's greedy tokens on three prompts."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  config, _, params, tok = smollm2
  cfg = config.model
  params = jax.tree.map(np.asarray, params)
  new = 10
  ids = [tok.encode(p) for p in SMOL_PROMPTS]
  for weights in ("f32", "int8"):
    path = onnx_graph.save(onnx_graph.build(cfg, params, weights),
                           str(tmp_path / f"{weights}.onnx"))
    sess = onnx_graph.session(path)
    reference = reference_params(cfg, params, weights)
    for row in ids:
      tokens, logits, _, _ = onnx_graph.greedy(sess, cfg, row, new)
      _assert_same(tokens, logits, *jax_greedy(cfg, reference, row, new), tol=1e-3)
    os.remove(path)
  out = hf.write(config, params, tok, str(tmp_path / "hf"))
  model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
  hf_tok = transformers.AutoTokenizer.from_pretrained(out)
  for prompt, row in zip(SMOL_PROMPTS, ids):
    assert hf_tok(prompt, add_special_tokens=False).input_ids == row
    with torch.no_grad():
      got = model.generate(torch.tensor([row]), max_new_tokens=new, do_sample=False,
                           eos_token_id=None, pad_token_id=0)[0, len(row):].tolist()
    assert got == jax_greedy(cfg, params, row, new)[0]
  path = gguf_file.write(config, params, tok, str(tmp_path / "m.gguf"), "q8_0")
  loaded_config, _, loaded, loaded_tok = model_source.load(path)
  import gguf
  original = gguf.GGUFReader(config.source.path)
  exported = gguf.GGUFReader(path)
  for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.pre",
              "tokenizer.ggml.token_type", "tokenizer.chat_template"):
    assert exported.fields[key].contents() == original.fields[key].contents(), key
  reference = reference_params(cfg, params, "q8_0")
  for row in ids:
    assert loaded_tok.encode(tok.decode(row)) == row
    _assert_same(*jax_greedy(loaded_config.model, loaded, row, new), *jax_greedy(cfg, reference, row, new))
