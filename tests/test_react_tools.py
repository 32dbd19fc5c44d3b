"""ReAct tools: search / lookup semantics, the safe calculator, answer scoring, FEVER pages."""

import re
import time

from hypothesis import given, settings, strategies as st
import pytest

from eval.react import calculator
from eval.react import docstore
from eval.react import fever_pages
from eval.react import prompts
from eval.react import scoring
from eval.react import tools

_MILHOUSE = ["Milhouse Mussolini Van Houten is a character in The Simpsons.",
             "He is Bart Simpson's best friend.",
             "Milhouse was named after U.S. president Richard Nixon.",
             "His middle name was Milhous.",
             "He has a crush on Lisa.",
             "He wears glasses.",
             "Nixon's mother was named Hannah Milhous."]


PAGES = {  # also the start of tests/test_web_tools.py's pages for the page's search
    "Milhouse Van Houten": _MILHOUSE,
    "Richard Nixon": ["Richard Milhous Nixon was the 37th president of the United States."],
    "Colorado orogeny": ["The Colorado orogeny was an episode of mountain building.",
                         "The eastern sector extends into the High Plains."],
    "High Plains (United States)": ["The High Plains are a subregion of the Great Plains."],
    "Lisa Simpson": ["Lisa is Bart's sister."],
    "Zebra": ["Zebras are African equines."],
}


@pytest.fixture(scope="module")
def store():
  return docstore.DocStore(PAGES)


# ---- search / lookup ---------------------------------------------------------------------------

def test_search_exact_title_returns_first_five_sentences_case_insensitively(store):
  browser = tools.Browser(store)
  assert browser.search("milhouse van houten") == " ".join(_MILHOUSE[:5])
  assert browser.page == "Milhouse Van Houten"
  assert tools.Browser(store).search("  Milhouse_Van   HOUTEN ") == " ".join(_MILHOUSE[:5])


def test_search_miss_lists_bm25_similar_titles_and_keeps_the_page(store):
  browser = tools.Browser(store)
  browser.search("Richard Nixon")
  observation = browser.search("Milhouse")
  similar = re.fullmatch(r"Could not find \[Milhouse\]\. Similar: \[(.*)\]\.", observation)
  assert similar, observation
  titles = re.findall(r"'([^']*)'", similar.group(1))
  assert titles[0] == "Milhouse Van Houten"
  assert "Zebra" not in titles  # no shared word: score 0, not offered
  assert browser.page == "Richard Nixon"  # a miss does not change the page (WikiEnv)
  high = store.similar("High Plains elevation")
  assert high[0] == "High Plains (United States)" and len(high) <= 5


def test_lookup_advances_through_matches_then_says_no_more(store):
  browser = tools.Browser(store)
  browser.search("Milhouse Van Houten")
  assert browser.lookup("milhous") == f"(Result 1 / 4) {_MILHOUSE[0]}"
  assert browser.lookup("milhous") == f"(Result 2 / 4) {_MILHOUSE[2]}"
  assert browser.lookup("named") == f"(Result 1 / 2) {_MILHOUSE[2]}"  # new keyword: restart
  assert browser.lookup("named") == f"(Result 2 / 2) {_MILHOUSE[6]}"  # beyond the 5 shown
  assert browser.lookup("named") == "No more results."
  assert browser.lookup("zeppelin") == "No more results."
  browser.search("Colorado orogeny")  # a new page resets the cursor, even for the same keyword
  assert browser.lookup("eastern") == (
      "(Result 1 / 1) The eastern sector extends into the High Plains.")


def test_lookup_without_a_page(store):
  assert tools.Browser(store).lookup("anything") == "No more results."


def test_empty_store_and_empty_query():
  browser = tools.Browser(docstore.DocStore({}))
  assert browser.search("X") == "Could not find [X]. Similar: []."
  assert docstore.DocStore({"A b": ["c."]}).similar("") == []


def test_split_sentences():
  text = 'It was released in 1972. The song was "a hit". Hall wrote it! Did he? yes'
  assert docstore.split_sentences(text) == [
      "It was released in 1972.", 'The song was "a hit".', "Hall wrote it!", "Did he? yes"]


# ---- calculator --------------------------------------------------------------------------------

@pytest.mark.parametrize("expression,expected", [
    ("16 - 3 - 4", "9"), ("9 * 2", "18"), ("7 / 2", "3.5"), ("9 / 3", "3"), ("0.1 + 0.2", "0.3"),
    ("2 ** 10", "1024"), ("2^10", "1024"), ("17 // 5", "3"), ("17 % 5", "2"), ("-(3 - 5)", "2"),
    ("sqrt(16)", "4"), ("abs(-2.5)", "2.5"), ("round(2.567, 2)", "2.57"), ("max(1, 234)", "234"),
    ("min(4, 2, 8)", "2"), ("$1,234 + $1", "1235"), ("1,000,000 / 4", "250000"), ("3 × 4", "12"),
    ("12 ÷ 4 − 1", "2"), ("16-3-4=", "9"), ("10 ** 99", "1" + "0" * 99), ("2 ** -2", "0.25"),
    ("1.5e3", "1500"),
])
def test_calculator_values(expression, expected):
  assert calculator.calculate(expression) == expected


@pytest.mark.parametrize("expression", [
    "__import__('os').system('ls')", "().__class__.__bases__", "x + 1", "lambda: 1", "'a' * 3",
    "[1, 2]", "1, 2", "True + 1", "9**9**9", "10**100000", "10 ** 100", "2 ** -101", "1e400",
    "1" * 300, "(-8) ** (1 / 3)", "1 / 0", "20%", "max(1,234)", "round(1.5, ndigits=1)",
    "min(*[1, 2])", "open('/etc/passwd')", "", "   ", "1 if 1 else 2", "[i for i in range(9)]",
    "a.b", "{1: 2}", "abs()", "f'{1}'", "(9) ** (99 ** 99)", "0 ** -1", "sqrt(-1)",
])
def test_calculator_refuses_with_an_error_string(expression):
  result = calculator.calculate(expression)
  assert result.startswith("Error: "), (expression, result)


def test_calculator_refuses_non_text():
  assert calculator.calculate(None).startswith("Error: ")


def _check_calculator_output(text):
  start = time.perf_counter()
  result = calculator.calculate(text)
  assert time.perf_counter() - start < 1.0
  assert isinstance(result, str)
  if not result.startswith("Error: "):
    value = int(result) if re.fullmatch(r"-?\d+", result) else float(result)  # a number only
    assert abs(value) < 10 ** calculator.MAX_DIGITS
    assert len(result) <= calculator.MAX_DIGITS + 8


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_calculator_fuzz_any_text(text):
  _check_calculator_output(text)


_NUMBERS = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(-1e6, 1e6).map(repr),
                     st.sampled_from(["9" * 50, "0", "0.0", "1e308"]))
_ARITHMETIC = st.recursive(
    _NUMBERS,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "^"]), inner)
        .map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["-", "+"]), inner).map("".join),
        st.tuples(st.sampled_from(["sqrt", "abs", "round", "min", "max"]),
                  st.lists(inner, min_size=1, max_size=3))
        .map(lambda t: f"{t[0]}({', '.join(t[1])})")),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_ARITHMETIC)
def test_calculator_fuzz_arithmetic(expression):
  _check_calculator_output(expression)


def test_gsm8k_prompts_show_what_the_calculator_returns():
  for mode in ("react", "act"):
    text = prompts.fewshot("", "gsm8k", mode)
    pairs = re.findall(r"Action \d+: Calculate\[(.*)\]\nObservation \d+: (.*)", text)
    assert len(pairs) == 7
    for expression, observation in pairs:
      assert calculator.calculate(expression) == observation


# ---- scoring -----------------------------------------------------------------------------------

def test_squad_exact_match_and_f1():
  assert scoring.normalize_answer("The  Richard Nixon!") == "richard nixon"
  assert scoring.exact_match("the Richard Nixon.", "Richard Nixon") == 1.0
  assert scoring.exact_match("1,800 to 7,000 ft", "1800 to 7000 ft") == 1.0
  assert scoring.exact_match("Nixon", "Richard Nixon") == 0.0
  assert scoring.f1("Nixon", "Richard Nixon") == pytest.approx(2 / 3)
  assert scoring.f1("president Richard Nixon", "Richard Nixon") == pytest.approx(0.8)
  assert scoring.f1("Boston", "Ulster County") == 0.0
  assert scoring.f1("", "Ulster County") == 0.0
  assert scoring.f1("yes", "no") == 0.0
  assert scoring.f1("no way", "no") == 0.0  # official HotpotQA: yes/no must match exactly
  assert scoring.score_hotpotqa("Yes", "yes") == {"correct": True, "em": 1.0, "f1": 1.0}


def test_fever_label_scoring():
  assert scoring.score_fever("SUPPORTS", "SUPPORTS")["correct"]
  assert scoring.score_fever(" supports.", "SUPPORTS")["acc"] == 1.0
  assert scoring.score_fever("Not enough info", "NOT ENOUGH INFO")["correct"]
  assert not scoring.score_fever("REFUTES", "SUPPORTS")["correct"]
  assert not scoring.score_fever("", "REFUTES")["correct"]


def test_gsm8k_numeric_match():
  assert scoring.gsm8k_gold("She makes 9 * 2 = $18.\n#### 1,018") == "1018"
  assert scoring.gsm8k_gold("no final answer") is None
  assert scoring.score_gsm8k("$1,018.00", "1018")["correct"]
  assert scoring.score_gsm8k("18 dollars", "18")["correct"]
  assert scoring.score_gsm8k("9 eggs make 18", "18")["correct"]  # the last number counts
  assert scoring.score_gsm8k("-3", "-3")["correct"]
  assert not scoring.score_gsm8k("18.5", "18")["correct"]
  assert not scoring.score_gsm8k("eighteen", "18")["correct"]


# ---- FEVER pages -------------------------------------------------------------------------------

def test_detokenise_fever_text_and_titles():
  assert fever_pages.detokenise(
      "Kenneth `` Babyface '' Edmonds -LRB- born 1958 -RRB- , it 's 50 % .") == (
          'Kenneth "Babyface" Edmonds (born 1958), it\'s 50%.')
  assert fever_pages.page_title("Soul_Food_-LRB-film-RRB-") == "Soul Food (film)"
  assert fever_pages.page_title("Star_Wars-COLON-_Episode_IV") == "Star Wars: Episode IV"


def test_fever_pages_align_evidence_in_sent_id_order():
  rows = [
      {"evidence_pages": [["A", 2]], "evidence_sentences": ["A two ."],
       "aligned_evidence": [{"title": "A", "sent_id": 2, "text": "A two ."}]},
      # A 2 is known, so propagation places the other sentence on A 0.
      {"evidence_pages": [["A", 0], ["A", 2]], "evidence_sentences": ["A two .", "A zero ."]},
      # Nothing exact: the title words decide which sentence is Bee_Gees's.
      {"evidence_pages": [["Bee_Gees", 1], ["Cat", 0]],
       "evidence_sentences": ["A cat sat .", "The Bee Gees sang -LRB- loudly -RRB- ."]},
  ]
  pages, stats = fever_pages.evidence_pages(rows)
  assert pages == {"A": ["A zero.", "A two."], "Bee Gees": ["The Bee Gees sang (loudly)."],
                   "Cat": ["A cat sat."]}
  assert stats == {"aligned": 1, "propagated": 1, "guessed": 2, "unplaced": 0}
