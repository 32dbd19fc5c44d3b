"""Text sources: local .txt / .jsonl files or a TFDS dataset -> documents -> train / held-out text.

Promises (tested in tests/test_sources.py):
  * Paths resolve against one data dir: `data.data_dir`, else $FRUGAL_DATA_DIR, else
    `<repo>/../shared/data` if it exists. Absolute paths and globs stand as written.
  * A `.txt` file is one document; a `.jsonl` line is one document (text in `data.field`).
    A malformed JSONL line stops the run with the file and line number: silently training on a
    partial corpus is worse than fixing one line. Blank JSONL lines are skipped.
  * Bytes that are not UTF-8 are decoded with U+FFFD replacement, counted per file and logged.
  * `data.dedupe`: a paragraph (blank-line separated) is dropped when more than half of its lines
    already occur in earlier files (sorted path order); lines are compared lower-cased with
    punctuation and whitespace collapsed, so exact duplicate paragraphs always go. Repeats inside
    one file stay. Why lines and not whole paragraphs: the Shakespeare collections are different
    editions (punctuation, stage directions, speaker-name style differ), so whole-paragraph
    comparison removed none of tinyshakespeare; this rule removes ~80% of it.
  * Held-out text is the last `data.eval_fraction` of every document, cut at the first line
    boundary at or after that point; the rest trains. No held-out line is ever training text
    (except where the same line also occurs in the training part of some document).
  * `data.name` set: TFDS records from `tfds.data_source(name, split)` (ArrayRecord, no
    TensorFlow), one document each, read whole into host memory; `data.path` is then ignored.
"""

import dataclasses
import glob
import json
import os
import re

from absl import logging

_REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.path.normpath(os.path.join(_REPO_DIR, "..", "shared", "data"))
_PARAGRAPH_BREAK = re.compile(r"(\n(?:[ \t\r\f\v]*\n)+)")  # a break is one or more blank lines
_NOT_WORD = re.compile(r"[\W_]+")


@dataclasses.dataclass
class SourceStats:
  """What loading found; logged, and returned for tests and smoke reports."""

  num_files: int = 0
  num_documents: int = 0
  num_chars: int = 0  # after dedupe, before the held-out split
  undecodable: dict = dataclasses.field(default_factory=dict)  # path -> replaced byte sequences
  dedupe_dropped_paragraphs: int = 0
  dedupe_dropped_chars: int = 0


def resolve_data_dir(setting):
  """The one data-dir rule (training data, eval data, chat, export): `setting` (a path string such
  as --data_dir, or a data config, whose `data_dir` is used), else $FRUGAL_DATA_DIR, else
  DEFAULT_DATA_DIR (<repo>/../shared/data) if it exists, else None."""
  if not isinstance(setting, str):
    setting = setting.data_dir
  for candidate in (setting, os.environ.get("FRUGAL_DATA_DIR", "")):
    if candidate:
      return os.path.abspath(os.path.expanduser(candidate))
  return DEFAULT_DATA_DIR if os.path.isdir(DEFAULT_DATA_DIR) else None


def resolve_files(data_config):
  """Sorted, de-duplicated file paths matched by `data.path` (a glob or a tuple of globs)."""
  patterns = (data_config.path,) if isinstance(data_config.path, str) else tuple(data_config.path)
  data_dir = resolve_data_dir(data_config)
  if not patterns:
    raise ValueError("data.path is empty and data.name is not set: name .txt/.jsonl files or a "
                     "TFDS dataset.")
  files = set()
  for pattern in patterns:
    pattern = os.path.expanduser(pattern)
    if not os.path.isabs(pattern):
      if data_dir is None:
        raise ValueError(
            f"data.path {pattern!r} is relative but no data dir is known: set data.data_dir or "
            f"$FRUGAL_DATA_DIR, or create {DEFAULT_DATA_DIR}.")
      pattern = os.path.join(data_dir, pattern)
    matched = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
    if not matched:
      raise ValueError(
          f"data.path entry {pattern!r} matches no file (data dir {data_dir!r}, from "
          f"data.data_dir, else $FRUGAL_DATA_DIR, else ../shared/data next to the repo). Check "
          f"the spelling, or point data.data_dir at the folder that holds it.")
    for path in matched:
      if not path.endswith((".txt", ".jsonl")):
        raise ValueError(f"data.path matched {path!r}: only .txt (one document per file) and "
                         f".jsonl (one document per line) are supported.")
    files.update(os.path.abspath(p) for p in matched)
  return sorted(files)


def load_documents(data_config):
  """-> (documents: list[str], SourceStats). Non-empty documents, deduped if `data.dedupe`."""
  if data_config.name:
    return _load_tfds(data_config)
  files = resolve_files(data_config)
  stats = SourceStats(num_files=len(files))
  seen = set()  # normalised lines of earlier files
  documents = []
  for path in files:
    file_docs = _read_file(path, data_config.field, stats)
    if data_config.dedupe:
      deduped = [_drop_seen_paragraphs(d, seen, stats) for d in file_docs]
      file_docs = [text for text, _ in deduped]
      seen.update(line for _, lines in deduped for line in lines)
    documents.extend(d for d in file_docs if d.strip())
  if not documents:
    raise ValueError(
        f"data.path {data_config.path!r} matched {len(files)} file(s) under data dir "
        f"{resolve_data_dir(data_config)!r} but they hold no text (empty files, empty "
        f"{data_config.field!r} fields, or everything removed by data.dedupe).")
  stats.num_documents = len(documents)
  stats.num_chars = sum(len(d) for d in documents)
  if stats.undecodable:
    logging.warning("data: %d byte sequences in %d files are not UTF-8 and were replaced by U+FFFD "
                    "(e.g. %s)", sum(stats.undecodable.values()), len(stats.undecodable),
                    next(iter(stats.undecodable)))
  logging.info("data: %d documents, %d characters from %d files; dedupe dropped %d paragraphs "
               "(%d characters); %d files had undecodable bytes", stats.num_documents,
               stats.num_chars, stats.num_files, stats.dedupe_dropped_paragraphs,
               stats.dedupe_dropped_chars, len(stats.undecodable))
  return documents, stats


def split_heldout(text, eval_fraction):
  """-> (train, held_out): held_out is the last `eval_fraction` of `text` from a line start on."""
  if eval_fraction <= 0:
    return text, ""
  cut = int(len(text) * (1.0 - eval_fraction))  # nanoGPT: data[:int(n * 0.9)] trains
  if cut > 0 and text[cut - 1] != "\n":
    newline = text.find("\n", cut)
    cut = len(text) if newline < 0 else newline + 1
  return text[:cut], text[cut:]


_SPLITS_CACHE = {}


def load_splits(data_config):
  """-> (train_documents, held_out_documents, SourceStats); empty parts are left out.

  The tokenizer, the train iterator and the eval batches all start from this; the last result is
  kept while the config and the files (paths, sizes, mtimes) are unchanged, so one run reads once.
  """
  files = () if data_config.name else tuple(
      (p, os.path.getmtime(p), os.path.getsize(p)) for p in resolve_files(data_config))
  key = (data_config.to_json_best_effort(sort_keys=True), files)
  if key not in _SPLITS_CACHE:
    _SPLITS_CACHE.clear()
    _SPLITS_CACHE[key] = _load_splits(data_config)
  return _SPLITS_CACHE[key]


def _load_splits(data_config):
  documents, stats = load_documents(data_config)
  pairs = [split_heldout(d, data_config.eval_fraction) for d in documents]
  train = [t for t, _ in pairs if t]
  held_out = [h for _, h in pairs if h]
  logging.info("data: %d training characters, %d held-out characters",
               sum(map(len, train)), sum(map(len, held_out)))
  return train, held_out, stats


def chunk_text(text, chunk_chars):
  """Cuts `text` at line boundaries into pieces of at least `chunk_chars` (the last may be less).

  A single line longer than `chunk_chars` stays whole. "".join(result) == text.
  """
  chunks, current, size = [], [], 0
  for line in text.splitlines(keepends=True):
    current.append(line)
    size += len(line)
    if size >= chunk_chars:
      chunks.append("".join(current))
      current, size = [], 0
  if current:
    chunks.append("".join(current))
  return chunks


def _read_file(path, field, stats):
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError:
    text = raw.decode("utf-8", errors="replace")
    replaced = text.count("\ufffd") - raw.count("\ufffd".encode())
    stats.undecodable[path] = replaced
    logging.info("data: %s: %d byte sequences are not UTF-8; replaced by U+FFFD", path, replaced)
  if not path.endswith(".jsonl"):
    return [text]
  documents = []
  for line_number, line in enumerate(text.split("\n"), start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}:{line_number}: malformed JSON line ({e.msg} at column "
                       f"{e.colno}); fix or remove it.") from None
    if not isinstance(record, dict) or not isinstance(record.get(field), str):
      keys = sorted(record) if isinstance(record, dict) else type(record).__name__
      raise ValueError(f"{path}:{line_number}: no string field {field!r} (data.field); the "
                       f"line holds {keys}.")
    documents.append(record[field])
  return documents


def _normalised_lines(paragraph):
  lines = (" ".join(_NOT_WORD.sub(" ", line.lower()).split()) for line in paragraph.split("\n"))
  return [line for line in lines if line]


def _drop_seen_paragraphs(text, seen, stats):
  """-> (text without paragraphs mostly made of lines in `seen`, normalised lines of `text`)."""
  parts = _PARAGRAPH_BREAK.split(text)  # [paragraph, break, paragraph, break, ..., paragraph]
  kept, all_lines = [], []
  for i in range(0, len(parts), 2):
    paragraph, brk = parts[i], parts[i + 1] if i + 1 < len(parts) else ""
    lines = _normalised_lines(paragraph)
    all_lines.extend(lines)
    if lines and 2 * sum(line in seen for line in lines) > len(lines):
      stats.dedupe_dropped_paragraphs += 1
      stats.dedupe_dropped_chars += len(paragraph) + len(brk)
    else:
      kept.append(paragraph + brk)
  return "".join(kept), all_lines


def _load_tfds(data_config):
  import tensorflow_datasets as tfds  # slow; TFDS runs only

  source = tfds.data_source(data_config.name, split=data_config.split,
                            data_dir=data_config.tfds_data_dir or None, download=False)
  documents = []
  for i in range(len(source)):
    text = source[i][data_config.field]
    if isinstance(text, bytes):
      text = text.decode("utf-8", errors="replace")
    if text.strip():
      documents.append(text)
  if not documents:
    raise ValueError(f"TFDS {data_config.name!r} split {data_config.split!r} has no text in field "
                     f"{data_config.field!r} (data.field).")
  stats = SourceStats(num_files=0, num_documents=len(documents),
                      num_chars=sum(len(d) for d in documents))
  logging.info("data: TFDS %s[%s]: %d documents, %d characters", data_config.name,
               data_config.split, stats.num_documents, stats.num_chars)
  return documents, stats
