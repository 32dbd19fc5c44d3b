import jax
from jax.experimental import multihost_utils
import numpy as np
import pytest
import sentencepiece as spm

from input_pipeline import tokenizer as tokenizer_lib

HARD_STRINGS = [
    "",
    " ",
    "   three leading spaces and two trailing  ",
    "a\n\n\nb\n",
    "\ttab\tseparated\t\tcolumns",
    "windows\r\nline\r\nends",
    "naïve café Straße 小さな",
    "unseen: 🎉🦀 Ελληνικά кириллица ﷺ",
    "\x00 nul and \x7f del",
    "doc 9 line 999: the king   the  queen",
]


def _forbid_training(monkeypatch):
  def fail(**kwargs):
    raise AssertionError("the tokenizer was retrained")
  monkeypatch.setattr(spm.SentencePieceTrainer, "train", fail)


@pytest.mark.parametrize("text", HARD_STRINGS)
def test_round_trip_is_lossless(tiny_tokenizer, text):
  assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_byte_lengths_sum_to_utf8_length(tiny_tokenizer):
  lengths = tiny_tokenizer.token_byte_lengths()
  assert lengths.shape == (tiny_tokenizer.vocab_size,) and lengths.dtype == np.int32
  for text in HARD_STRINGS:
    assert lengths[tiny_tokenizer.encode(text)].sum() == len(text.encode("utf-8")), text
  assert lengths[[tiny_tokenizer.pad_id, tiny_tokenizer.bos_id, tiny_tokenizer.eos_id]].sum() == 0


def test_special_ids_and_vocab(tiny_tokenizer):
  tok = tiny_tokenizer
  assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
  assert 260 < tok.vocab_size <= 400  # 256 bytes + 4 specials + merges, capped by the model vocab
  ids = tok.encode("\n".join(HARD_STRINGS))
  assert min(ids) > 3  # text never encodes to pad / bos / eos / unk
  assert tok.encode("the king") != [tok.encode(c)[0] for c in "the king"]  # BPE merged something


def test_reused_not_retrained(tiny_config, tmp_path, monkeypatch):
  workdir = str(tmp_path)
  first = tokenizer_lib.get_tokenizer(tiny_config.data, vocab_size=400, workdir=workdir)
  assert first.path == str(tmp_path / "tokenizer.model")
  before = (tmp_path / "tokenizer.model").stat().st_mtime_ns
  _forbid_training(monkeypatch)
  second = tokenizer_lib.get_tokenizer(tiny_config.data, vocab_size=400, workdir=workdir)
  assert second.model_proto == first.model_proto
  assert (tmp_path / "tokenizer.model").stat().st_mtime_ns == before
  assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.model"]  # no temp file left behind


def test_loads_existing_model_and_keeps_a_copy(tiny_config, tiny_tokenizer, tmp_path, monkeypatch):
  _forbid_training(monkeypatch)
  tiny_config.data.tokenizer = tiny_tokenizer.path
  tiny_config.data.path = ("no/such/corpus/*.txt",)  # proves the corpus is not read
  tok = tokenizer_lib.get_tokenizer(tiny_config.data, vocab_size=400, workdir=str(tmp_path))
  assert tok.encode("the queen's café") == tiny_tokenizer.encode("the queen's café")
  assert (tmp_path / "tokenizer.model").read_bytes() == tiny_tokenizer.model_proto


def test_workdir_with_another_tokenizer_is_an_error(tiny_config, tiny_tokenizer, tmp_path):
  (tmp_path / "tokenizer.model").write_bytes(tiny_tokenizer.model_proto)
  other = tmp_path / "other"
  tiny_config.data.eval_fraction = 0.5  # trains on other text, so a different model
  tokenizer_lib.get_tokenizer(tiny_config.data, vocab_size=400, workdir=str(other))
  tiny_config.data.tokenizer = str(other / "tokenizer.model")
  with pytest.raises(ValueError, match="differs from"):
    tokenizer_lib.get_tokenizer(tiny_config.data, vocab_size=400, workdir=str(tmp_path))


def test_vocab_larger_than_model_names_both_numbers_and_path(tiny_config, tiny_tokenizer, tmp_path):
  tiny_config.data.tokenizer = tiny_tokenizer.path
  with pytest.raises(ValueError) as error:
    tokenizer_lib.get_tokenizer(tiny_config.data, vocab_size=300, workdir=str(tmp_path))
  message = str(error.value)
  assert str(tiny_tokenizer.vocab_size) in message and "300" in message
  assert tiny_tokenizer.path in message


@pytest.mark.parametrize("eval_fraction, learned", [(0.2, False), (0.0, True)])
def test_trained_on_training_split_only(tiny_config, tmp_path, eval_fraction, learned):
  lines = ["the king and the queen went to sea\n"] * 80 + ["zyxwvut zyxwvut zyxwvut\n"] * 20
  (tmp_path / "corpus").mkdir()
  (tmp_path / "corpus" / "book.txt").write_text("".join(lines))
  tiny_config.data.data_dir = str(tmp_path / "corpus")
  tiny_config.data.eval_fraction = eval_fraction  # 0.2: the zyxwvut lines are held out
  tok = tokenizer_lib.get_tokenizer(tiny_config.data, vocab_size=400, workdir=str(tmp_path / "w"))
  assert (len(tok.encode("zyxwvut")) == 1) == learned


def test_only_process_0_trains_the_others_wait(tiny_config, tiny_tokenizer, tmp_path, monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  _forbid_training(monkeypatch)
  barriers = []

  def process_0_finishes(name):  # the barrier returns once process 0 has written the file
    barriers.append(name)
    (tmp_path / "tokenizer.model").write_bytes(tiny_tokenizer.model_proto)

  monkeypatch.setattr(multihost_utils, "sync_global_devices", process_0_finishes)
  tok = tokenizer_lib.get_tokenizer(tiny_config.data, vocab_size=400, workdir=str(tmp_path))
  assert len(barriers) == 1 and tok.model_proto == tiny_tokenizer.model_proto
