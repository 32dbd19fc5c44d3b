"""Preference pairs: the three shipped formats, counted skips, held-out split, reply-only weights."""

import gzip
import json
import os

import pytest

from eval import data as eval_data
from input_pipeline import preference
from test_sft_data import CharTokenizer, trained_text


def _write(path, rows, jsonl=False):
  text = "\n".join(json.dumps(r) for r in rows) if jsonl else json.dumps(rows)
  if str(path).endswith(".gz"):
    with gzip.open(path, "wt", encoding="utf-8") as f:
      f.write(text)
  else:
    path.write_text(text)
  return str(path)


def test_hh_dialogues_split_at_the_last_assistant_turn(tmp_path):
  rows = [{"chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant: Knock knock.",
           "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant: No."},
          {"chosen": "\n\nHuman: x\n\nAssistant: same", "rejected": "\n\nHuman: x\n\nAssistant: same"},
          {"chosen": "\n\nHuman: x\n\nAssistant: a", "rejected": "\n\nHuman: y\n\nAssistant: b"},
          {"chosen": "\n\nHuman: x"}]
  pairs, skipped = preference.read_pairs(_write(tmp_path / "hh.jsonl.gz", rows, jsonl=True), "hh")
  assert pairs == [preference.Pair((("user", "hi"), ("assistant", "hello"), ("user", "a joke?")),
                                   "Knock knock.", "No.")]
  assert skipped == {"identical chosen and rejected": 1,
                     "chosen and rejected dialogues differ before the last reply": 1,
                     "missing chosen or rejected": 1}


def test_dpo_and_alpaca_eval_formats(tmp_path):
  dpo = [{"conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Q"}],
          "chosen": {"from": "gpt", "value": "good"}, "rejected": {"from": "gpt", "value": "bad"}},
         {"conversations": [], "chosen": {"value": "a"}}]
  pairs, skipped = preference.read_pairs(_write(tmp_path / "dpo.json", dpo), "dpo")
  assert pairs == [preference.Pair((("system", "Be kind."), ("user", "Q")), "good", "bad")]
  assert skipped == {"missing conversations, chosen or rejected": 1}
  annotations = [{"instruction": "I", "output_1": "one", "output_2": "two", "preference": "2"},
                 {"instruction": "I", "output_1": "one", "output_2": "two", "preference": 1},
                 {"instruction": "I", "output_1": "one", "output_2": "two", "preference": "0"}]
  pairs, skipped = preference.read_pairs(_write(tmp_path / "ae.json", annotations), "alpaca_eval")
  assert [(p.chosen, p.rejected) for p in pairs] == [("two", "one"), ("one", "two")]
  assert skipped == {"tie or no preference": 1}
  with pytest.raises(ValueError, match="unknown preference format 'kto'"):
    preference.read_pairs(str(tmp_path / "ae.json"), "kto")
  with pytest.raises(FileNotFoundError, match="nope.json does not exist"):
    preference.read_pairs(str(tmp_path / "nope.json"), "dpo")


def test_pair_tokens_weight_only_the_final_reply():
  tok = CharTokenizer()
  pair = preference.Pair((("user", "hi"), ("assistant", "hello"), ("user", "joke?")), "Knock.", "No.")
  (c_ids, c_w), (r_ids, r_w) = preference.tokenize_pair(pair, tok, "chatml", 1000)
  assert trained_text(tok, c_ids, c_w) == "Knock.<|im_end|>" and trained_text(tok, r_ids, r_w) == "No.<|im_end|>"
  assert c_ids[:c_w.index(1)] == r_ids[:r_w.index(1)]  # the same prompt tokens on both sides


def test_held_out_split_is_by_prompt_and_deterministic():
  pairs = [preference.Pair((("user", f"q{i % 50}"),), f"a{i}", f"b{i}") for i in range(200)]
  held = [preference.is_held_out(p, 0.2) for p in pairs]
  assert held == [preference.is_held_out(p, 0.2) for p in pairs]
  by_prompt = {}
  for p, h in zip(pairs, held):
    by_prompt.setdefault(p.messages, set()).add(h)
  assert all(len(sides) == 1 for sides in by_prompt.values())
  assert 0.05 < sum(held) / len(held) < 0.4


SHIPPED = [("preference/hh_rlhf_harmless_base_test.jsonl.gz", "hh", 2312),
           ("preference/llamafactory_dpo_en_demo.json", "dpo", 300),
           ("preference/alpaca_eval_v1_gpt4_annotations/alpaca-7b.json", "alpaca_eval", 805)]


@pytest.mark.parametrize("relative, fmt, rows", SHIPPED)
def test_shipped_files_read_with_every_row_accounted_for(relative, fmt, rows):
  try:
    path = os.path.join(eval_data.data_dir(""), relative)
  except FileNotFoundError as e:
    pytest.skip(f"no shared data dir: {e}")
  if not os.path.isfile(path):
    pytest.skip(f"{path} not present")
  pairs, skipped = preference.read_pairs(path, fmt)
  assert len(pairs) + sum(skipped.values()) == rows
  assert len(pairs) > 0.9 * rows or fmt == "alpaca_eval"
  assert all(p.chosen.strip() != p.rejected.strip() for p in pairs)
