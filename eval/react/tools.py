"""The agent's tools: search[entity] and lookup[keyword] over a DocStore (the paper's WikiEnv
semantics, offline), and calculate[expression]. A tool is a function argument -> observation
string; finish[answer] is not a tool, the agent ends the episode itself.

Observation formats follow the shipped few-shot prompts, so the model sees what it was shown:
  search hit   the first 5 sentences of the page, joined by spaces
  search miss  Could not find [entity]. Similar: ['t1', 't2', 't3', 't4', 't5'].
  lookup       (Result i / N) sentence      then "No more results." once the N are used up
"""

from eval.react import calculator

SENTENCES_SHOWN = 5  # WikiEnv.get_page_obs returns the first 5 sentences of a page
SIMILAR_SHOWN = 5  # WikiEnv shows the first 5 search results on a miss


class Browser:
  """One episode's view of a DocStore: the current page and the lookup cursor (WikiEnv state)."""

  def __init__(self, store):
    self.store = store
    self.page = None  # title of the current page, set by a successful search
    self._sentences = []
    self._keyword, self._hits, self._next = None, [], 0

  def search(self, entity):
    """A page whose title matches `entity` becomes current and its first sentences come back;
    otherwise the BM25-closest titles, and the current page stays as it was (as in WikiEnv)."""
    entity = entity.strip()
    found = self.store.find(entity)
    if found is None:
      return f"Could not find [{entity}]. Similar: {self.store.similar(entity, SIMILAR_SHOWN)}."
    self.page, self._sentences = found
    self._keyword, self._hits, self._next = None, [], 0
    return " ".join(self._sentences[:SENTENCES_SHOWN])

  def lookup(self, keyword):
    """The next sentence of the current page containing `keyword` (case-insensitive). A new
    keyword restarts the count; with no page or no (more) matches: "No more results."."""
    if keyword != self._keyword:
      self._keyword, self._next = keyword, 0
      self._hits = [s for s in self._sentences if keyword.lower() in s.lower()]
    if self._next >= len(self._hits):
      return "No more results."
    self._next += 1
    return f"(Result {self._next} / {len(self._hits)}) {self._hits[self._next - 1]}"

  def tools(self):
    return {"search": self.search, "lookup": self.lookup}


def calculator_tools():
  """{"calculate": safe arithmetic} for GSM8K; stateless, so one dict serves every episode."""
  return {"calculate": calculator.calculate}
