import json
import os

import pytest

from training import config as config_lib
from input_pipeline import sources

SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                           "shared", "data")
TINYSHAKESPEARE = "pretrain_text/tinyshakespeare/input.txt"


def data_config(data_dir, path, **overrides):
  c = config_lib.base_config().data
  c.data_dir = str(data_dir)
  c.path = path
  c.update(overrides)
  return c


def test_data_dir_resolution_order(tmp_path, monkeypatch):
  monkeypatch.setenv("FRUGAL_DATA_DIR", str(tmp_path / "from_env"))
  assert sources.resolve_data_dir(data_config(tmp_path / "explicit", ("x",))) == str(
      tmp_path / "explicit")
  assert sources.resolve_data_dir(data_config("", ("x",))) == str(tmp_path / "from_env")
  monkeypatch.delenv("FRUGAL_DATA_DIR")
  default = sources.resolve_data_dir(data_config("", ("x",)))
  assert default == (os.path.abspath(SHARED_DATA) if os.path.isdir(SHARED_DATA) else None)


def test_globs_jsonl_field_and_absolute_paths(tmp_path):
  (tmp_path / "books").mkdir()
  (tmp_path / "books" / "b.txt").write_text("second book\n")
  (tmp_path / "books" / "a.txt").write_text("first book\n")
  (tmp_path / "books" / "skip.md").write_text("not matched\n")
  records = [{"content": "web page one", "id": 1}, {"content": "web page two\nline 2", "id": 2}]
  (tmp_path / "web.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  (elsewhere / "c.txt").write_text("absolute path\n")
  config = data_config(tmp_path / "", ("books/*.txt", "*.jsonl", str(elsewhere / "c.txt")),
                       field="content", dedupe=False)
  documents, stats = sources.load_documents(config)
  # Sorted by absolute path: books/a, books/b, elsewhere/c, web.jsonl lines in file order.
  assert documents == ["first book\n", "second book\n", "absolute path\n", "web page one",
                       "web page two\nline 2"]
  assert (stats.num_files, stats.num_documents) == (4, 5)


def test_missing_path_names_pattern_and_data_dir(tmp_path):
  with pytest.raises(ValueError) as error:
    sources.load_documents(data_config(tmp_path, ("books/*.txt",)))
  message = str(error.value)
  assert os.path.join(str(tmp_path), "books/*.txt") in message and "data dir" in message
  assert "\n" not in message  # one paragraph


def test_one_pattern_matching_nothing_is_an_error(tmp_path):
  (tmp_path / "a.txt").write_text("text\n")
  with pytest.raises(ValueError, match="typo"):
    sources.load_documents(data_config(tmp_path, ("a.txt", "typo*.txt")))


def test_all_files_empty_is_an_error(tmp_path):
  (tmp_path / "a.txt").write_text("")
  (tmp_path / "b.txt").write_text("  \n\n")
  with pytest.raises(ValueError) as error:
    sources.load_documents(data_config(tmp_path, ("*.txt",)))
  assert "*.txt" in str(error.value) and str(tmp_path) in str(error.value)


def test_malformed_jsonl_names_file_and_line(tmp_path):
  (tmp_path / "d.jsonl").write_text('{"text": "fine"}\n\n{"text": "broken\n{"text": "x"}\n')
  with pytest.raises(ValueError, match=r"d\.jsonl:3: malformed JSON"):
    sources.load_documents(data_config(tmp_path, ("*.jsonl",)))


def test_jsonl_missing_field_names_file_line_and_field(tmp_path):
  (tmp_path / "d.jsonl").write_text('{"text": "fine"}\n{"body": "no text field"}\n')
  with pytest.raises(ValueError, match=r"d\.jsonl:2: no string field 'text'.*body"):
    sources.load_documents(data_config(tmp_path, ("*.jsonl",)))


def test_non_utf8_bytes_are_replaced_and_counted(tmp_path):
  (tmp_path / "latin1.txt").write_bytes("café crème ok\n".encode("latin-1"))
  (tmp_path / "utf8.txt").write_bytes("café \ufffd already a replacement char\n".encode())
  documents, stats = sources.load_documents(data_config(tmp_path, ("*.txt",), dedupe=False))
  assert documents[0] == "caf\ufffd cr\ufffdme ok\n"
  assert stats.undecodable == {str(tmp_path / "latin1.txt"): 2}


def test_dedupe_drops_paragraphs_seen_in_earlier_files(tmp_path):
  (tmp_path / "1.txt").write_text(
      "To be, or not to be:\nthat is the question.\n\nOnly here.\n\nRepeated.\n\nRepeated.\n")
  (tmp_path / "2.txt").write_text(
      "TO BE OR NOT TO BE\n  That is the question!\n\n"  # another edition: dropped
      "New words.\n\n"  # kept
      "to be or not to be\nfresh line one\nfresh line two\n\n"  # 1 of 3 lines seen: kept
      "  Only   HERE. \n")  # dropped
  documents, stats = sources.load_documents(data_config(tmp_path, ("*.txt",)))
  assert documents[0].count("Repeated.") == 2  # repeats inside one file stay
  assert documents[1] == "New words.\n\nto be or not to be\nfresh line one\nfresh line two\n\n"
  assert stats.dedupe_dropped_paragraphs == 2
  undeduped, _ = sources.load_documents(data_config(tmp_path, ("*.txt",), dedupe=False))
  assert undeduped[1] == (tmp_path / "2.txt").read_text()


def test_split_heldout_cuts_at_a_line_boundary():
  text = "".join(f"line {i}\n" for i in range(100))
  train, held_out = sources.split_heldout(text, 0.1)
  assert train + held_out == text
  assert train.endswith("\n") and held_out.startswith("line ")
  assert len(train) >= int(len(text) * 0.9) > len(train) - len("line 99\n")
  assert sources.split_heldout(text, 0.0) == (text, "")
  assert sources.split_heldout("one line, no newline", 0.5) == ("one line, no newline", "")


def test_no_heldout_line_is_training_text(corpus_dir):
  config = data_config(corpus_dir, ("*.txt",), eval_fraction=0.25)
  train, held_out, _ = sources.load_splits(config)
  train_lines = {line for document in train for line in document.splitlines()}
  held_out_lines = [line for document in held_out for line in document.splitlines()]
  assert len(held_out) == 5 and len(held_out_lines) > 60
  assert not train_lines & set(held_out_lines)
  documents, _ = sources.load_documents(config)
  assert [t + h for t, h in zip(train, held_out)] == documents


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED_DATA, TINYSHAKESPEARE)),
                    reason="shared data not present")
def test_tinyshakespeare_split_matches_nanogpt():
  config = data_config(SHARED_DATA, (TINYSHAKESPEARE,), eval_fraction=0.1)
  (train,), (held_out,), _ = sources.load_splits(config)
  with open(os.path.join(SHARED_DATA, TINYSHAKESPEARE), encoding="utf-8") as f:
    data = f.read()
  n = int(len(data) * 0.9)  # nanoGPT's data/shakespeare_char/prepare.py
  assert train.startswith(data[:n]) and data[n:].endswith(held_out)
  assert train.endswith("\n") and "\n" not in data[n:len(train) - 1]  # + the rest of one line
  assert train + held_out == data


def test_chunks_cut_at_line_boundaries():
  text = "".join(f"{i:03d} " + "x" * (i % 7) + "\n" for i in range(50)) + "no final newline"
  chunks = sources.chunk_text(text, 40)
  assert "".join(chunks) == text
  assert all(c.endswith("\n") and len(c) >= 40 for c in chunks[:-1])
  assert all(len(c) < 40 + 12 for c in chunks)  # no chunk runs much past the target


def test_tfds_source(monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  calls = []
  real_data_source = tfds.data_source

  def recording_data_source(name, **kwargs):
    calls.append((name, kwargs["split"]))
    return real_data_source(name, **kwargs)

  monkeypatch.setattr(tfds, "data_source", recording_data_source)
  config = data_config("", (), name="lm1b", split="test")
  with tfds.testing.mock_data(num_examples=7):  # random ArrayRecord records, offline
    documents, stats = sources.load_documents(config)
    expected = [r["text"] for r in tfds.data_source("lm1b", split="test", download=False)]
  expected = [t.decode() if isinstance(t, bytes) else t for t in expected]
  assert calls[0] == ("lm1b", "test")
  assert documents == [t for t in expected if t.strip()] and stats.num_documents == len(documents)
