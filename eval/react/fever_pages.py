"""FEVER pages for the search tool, built from the gold evidence of all claims: title -> evidence
sentences in sent_id order.

Text is detokenised (-LRB- -> "(", `` x '' -> "x", "word ," -> "word,"; titles also "_" -> " ", so
"Soul_Food_-LRB-film-RRB-" is searched as "Soul Food (film)"): the few-shot prompts show live
Wikipedia text, and a model searching natural titles should find them.

The shipped rows list a claim's evidence sentences (text, unordered) and its (page, sent_id) pairs
separately; only single-sentence evidence comes aligned. Pairing, in order of trust:
  1. `aligned_evidence` rows (exact);
  2. propagation: a pair's candidate sentences are those of every claim citing it, a sentence's
     candidate pairs those of every claim holding it, minus what is already placed; a single
     candidate is placed; repeat until nothing changes (exact);
  3. the rest, per claim: greedy by the share of the page title's words found in the sentence,
     ties to the lower sent_id. On claims that steps 1-2 resolve exactly, this rule puts 84% of
     sentences on the right page and 64% on the right (page, sent_id).
`stats` counts each kind, so a report can say how much of the store is guessed.
"""

import collections
import re

_BRACKETS = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}",
             "-COLON-": ":"}
_QUOTED = re.compile(r"``\s*(.*?)\s*''")
_SPACE_BEFORE = re.compile(r"\s+([,.;:!?%)\]}]|'s\b|n't\b|'re\b|'ve\b|'ll\b|'d\b|'m\b)")
_SPACE_AFTER = re.compile(r"([(\[{])\s+")
_WORD = re.compile(r"\w+")


def detokenise(text):
  """FEVER / PTB tokens back to plain text (a few regexes; not a full detokeniser)."""
  for token, char in _BRACKETS.items():
    text = text.replace(token, f" {char} " if char in "([{" else f" {char}")
  text = _QUOTED.sub(r'"\1"', text).replace("``", '"').replace("''", '"').replace("`", "'")
  text = _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text))
  return " ".join(text.split())


def page_title(wiki_id):
  """"Soul_Food_-LRB-film-RRB-" -> "Soul Food (film)"."""
  return detokenise(wiki_id.replace("_", " "))


def evidence_pages(rows):
  """({title: [sentences in sent_id order]}, stats) from FEVER rows with evidence_sentences and
  evidence_pages; text detokenised. stats: pairs placed exactly / by the title-word heuristic."""
  placed = {}  # (wiki_id, sent_id) -> raw sentence
  for row in rows:
    for item in row.get("aligned_evidence") or ():
      placed[(item["title"], item["sent_id"])] = item["text"]
  exact_from_rows = len(placed)
  _propagate(rows, placed)
  stats = {"aligned": exact_from_rows, "propagated": len(placed) - exact_from_rows}
  stats["guessed"] = _guess(rows, placed)
  stats["unplaced"] = len({_pair(p) for r in rows for p in r["evidence_pages"]} - set(placed))
  by_page = collections.defaultdict(list)
  for (wiki_id, sent_id), sentence in sorted(placed.items(), key=lambda kv: (kv[0][0], kv[0][1])):  # noqa: B007
    by_page[page_title(wiki_id)].append(detokenise(sentence))
  return dict(by_page), stats


def _pair(item):
  return (item[0], int(item[1]))


def _propagate(rows, placed):
  pair_options, sentence_options = {}, {}
  for row in rows:
    pairs, sentences = {_pair(p) for p in row["evidence_pages"]}, set(row["evidence_sentences"])
    for pair in pairs:
      pair_options[pair] = pair_options.get(pair, sentences) & sentences
    for sentence in sentences:
      sentence_options[sentence] = sentence_options.get(sentence, pairs) & pairs
  changed = True
  while changed:
    changed = False
    used = set(placed.values())
    for pair, options in pair_options.items():
      left = options - used
      if pair not in placed and len(left) == 1:
        placed[pair] = left.pop()
        used.add(placed[pair])
        changed = True
    for sentence, options in sentence_options.items():
      left = options - placed.keys()
      if sentence not in used and len(left) == 1:
        placed[left.pop()] = sentence
        used.add(sentence)
        changed = True


def _guess(rows, placed):
  guessed = 0
  for row in rows:
    used = set(placed.values())
    pairs = sorted({_pair(p) for p in row["evidence_pages"]} - placed.keys())
    sentences = sorted(set(row["evidence_sentences"]) - used)
    ranked = sorted(((-_title_share(s, p[0]), p[1], i, j) for i, s in enumerate(sentences)
                     for j, p in enumerate(pairs)))
    taken_sentences, taken_pairs = set(), set()
    for _, _, i, j in ranked:
      if i not in taken_sentences and j not in taken_pairs:
        placed[pairs[j]] = sentences[i]
        taken_sentences.add(i)
        taken_pairs.add(j)
        guessed += 1
  return guessed


def _title_share(sentence, wiki_id):
  """Share of the title's words (parenthetical left out) that occur in the sentence."""
  title = re.sub(r"-LRB-.*?-RRB-", " ", wiki_id.replace("_", " "))
  title_words = set(_WORD.findall(title.lower()))
  return len(title_words & set(_WORD.findall(sentence.lower()))) / max(1, len(title_words))
