"""The document stores the search tool reads, and reading the part files they come from.

  distractor  one HotpotQA question's own 10 context paragraphs (2 gold + 8 distractors); built
              per question, in milliseconds.
  wiki        the 28,341 HotpotQA intro paragraphs (a local 2017 Wikipedia), shared by all
              questions; built once per data dir and kept in memory (`python -m
              eval.react.stores` prints the build time).
  fever       pages from the gold evidence of all FEVER claims (see fever_pages.py).
"""

import functools
import html
import os
import time

from eval import data
from eval.react import docstore
from eval.react import fever_pages

HOTPOTQA_FILES = tuple(f"react/hotpotqa/hotpotqa_dev_distractor.part{i:02d}-of-03.jsonl"
                       for i in range(1, 4))
WIKI_FILES = tuple(f"react/wiki/hotpotqa_wiki_intros.part{i:02d}-of-06.jsonl" for i in range(1, 7))
FEVER_FILES = tuple(f"react/fever/fever_dev_with_evidence.part{i:02d}-of-02.jsonl"
                    for i in range(1, 3))


def read_parts(root, files, required=(), limit=None):
  """(rows, skipped, total) over part files in order: the first `limit` good rows; total counts
  every non-blank line of all parts (the size of the shipped set, whatever the limit)."""
  rows, skipped, total = [], 0, 0
  for relative in files:
    file = data.path(root, relative)
    with open(file, encoding="utf-8") as f:
      total += sum(1 for line in f if line.strip())
    if limit is None or len(rows) < limit:
      part, bad = data.read_jsonl(file, required, None if limit is None else limit - len(rows))
      rows += part
      skipped += bad
  return rows, skipped, total


def distractor_store(row):
  """A HotpotQA row's context [[title, [sentences]]] as a store."""
  return docstore.DocStore({title: list(sentences) for title, sentences in row["context"]})


@functools.lru_cache(maxsize=2)
def wiki_store(root):
  """All HotpotQA intro pages; records with only `text` are split into sentences. HTML entities
  in titles are decoded ("&quot;J&quot; Is for Judgment" -> '"J" Is for Judgment')."""
  pages = {}
  for relative in WIKI_FILES:
    rows, _ = data.read_jsonl(data.path(root, relative), required=("title",))
    for row in rows:
      sentences = row.get("sentences") or docstore.split_sentences(row.get("text") or "")
      pages.setdefault(html.unescape(row["title"]), sentences)
  return docstore.DocStore(pages)


@functools.lru_cache(maxsize=2)
def fever_store(root):
  """(store, stats): FEVER evidence pages of every claim in the dev file (stats: fever_pages)."""
  rows, _, _ = read_parts(root, FEVER_FILES, ("evidence_sentences", "evidence_pages"))
  pages, stats = fever_pages.evidence_pages(rows)
  return docstore.DocStore(pages), stats


if __name__ == "__main__":
  start = time.perf_counter()
  store = wiki_store(data.data_dir())
  print(f"wiki store: {len(store)} pages built in {time.perf_counter() - start:.1f} s")


def parse_spec(spec):
  """("wiki", None) or ("distractor", (first, last)); ValueError naming the spec otherwise."""
  kind, _, rest = spec.partition(":")
  if kind == "wiki" and not rest:
    return "wiki", None
  first, dash, last = rest.partition("-")
  if kind == "distractor" and first.isdigit() and (not dash or last.isdigit()):
    first, last = int(first), int(last) if dash else int(first)
    if last >= first:
      return "distractor", (first, last)
  raise ValueError(f"store spec {spec!r}: expected wiki, distractor:N or distractor:A-B "
                   "(HotpotQA dev question numbers, A <= B)")


def load_spec(spec, root):
  """(DocStore, a line saying what it holds) for a spec (chat.py --store, export --docs), read
  from the data dir `root` (FileNotFoundError naming the missing file)."""
  kind, questions = parse_spec(spec)
  if kind == "wiki":
    store = wiki_store(root)
    return store, f"the local Wikipedia, {len(store)} HotpotQA intro pages"
  first, last = questions
  rows, _, total = read_parts(root, HOTPOTQA_FILES, ("question", "context"), last + 1)
  if last >= len(rows):
    raise ValueError(f"store spec {spec!r}: HotpotQA dev has questions 0..{len(rows) - 1} "
                     f"({total} rows in {os.path.join(root, HOTPOTQA_FILES[0])} and its parts)")
  if first == last:
    return (distractor_store(rows[first]),
            f"the paragraphs of HotpotQA dev question {first}: {rows[first]['question']}")
  merged = {"context": [c for row in rows[first:last + 1] for c in row["context"]]}
  store = distractor_store(merged)
  return store, f"the paragraphs of HotpotQA dev questions {first}-{last} ({len(store)} pages)"
