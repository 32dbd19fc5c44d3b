"""A read-only page store for the search tool: {title: [sentences]}, exact-title lookup, and a BM25
index (bm25s) that ranks the titles offered as "Similar:" when no title matches."""

import html
import re
import unicodedata

# A sentence ends at . ! or ? (optionally closed by a quote or bracket) followed by whitespace and
# an upper-case letter, digit or opening quote/bracket. Only for pages shipped as one text blob.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")


def _bm25s():
  """bm25s, imported when a store is built: importing it runs a jax computation, which would start
  the XLA backend before train.py's jax.distributed.initialize (train.py imports the eval suite)."""
  import bm25s
  return bm25s


def normalise_title(title):
  """The key exact-title search compares: HTML entities decoded, Unicode NFKC, case-folded,
  underscores as spaces and whitespace runs collapsed ("Soul_Food" == "soul  food")."""
  text = unicodedata.normalize("NFKC", html.unescape(title)).replace("_", " ")
  return " ".join(text.casefold().split())


def split_sentences(text):
  """Sentences of a plain-text paragraph (a regex heuristic; abbreviations like "U.S. Army" that
  are followed by a capital are split, which only makes a lookup return a shorter piece)."""
  return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


class DocStore:
  """Pages by title. `find` is exact (normalised) title match; `similar` ranks by BM25 over
  title + text, the title counted twice so a page named like the query ranks above one that
  merely mentions it."""

  def __init__(self, pages):
    """pages: {title: [sentences]} (titles as shown to the model; sentences stripped)."""
    self.pages = {t: [s.strip() for s in sents if s and s.strip()] for t, sents in pages.items()}
    self.titles = list(self.pages)
    self._by_key = {}
    for title in self.titles:  # first title wins when two differ only in case or spacing
      self._by_key.setdefault(normalise_title(title), title)
    corpus = [f"{t} {t} {' '.join(s)}" for t, s in self.pages.items()]
    bm25s = _bm25s()
    tokens = bm25s.tokenize(corpus, stopwords="en", show_progress=False)
    self._bm25 = None  # bm25s cannot index a corpus without a single word (e.g. no pages)
    if tokens.vocab:
      self._bm25 = bm25s.BM25()
      self._bm25.index(tokens, show_progress=False)

  def __len__(self):
    return len(self.titles)

  def find(self, title):
    """(title, sentences) of the page whose title matches exactly (case-sensitive first, then
    normalised), else None."""
    if title in self.pages:
      return title, self.pages[title]
    key = self._by_key.get(normalise_title(title))
    return (key, self.pages[key]) if key is not None else None

  def similar(self, query, k=5):
    """Up to k titles ranked by BM25 score for `query`; titles scoring zero are left out."""
    k = min(k, len(self.titles))
    tokens = _bm25s().tokenize([query], stopwords="en", show_progress=False, return_ids=False)
    if self._bm25 is None or k == 0 or not tokens[0]:
      return []
    ids, scores = self._bm25.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    return [self.titles[int(i)] for i, s in zip(ids[0], scores[0]) if s > 0]
