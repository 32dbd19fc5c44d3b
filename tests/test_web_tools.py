"""The page's ReAct agent and tools (web/js/react.js, web/js/tools/) against the Python they port.

pytest writes fixtures from eval/react (calculator observations over a wide expression list,
search / lookup sessions, Episodes run on scripted completions) and `node --test` checks that the
JS gives exactly the same (web/tests/unit/{calculator,docstore,react}.test.mjs). Without node
those tests are skipped, and fail under CI=1. export/search_index.py (the react section and
docs.json) is tested here directly.
"""

import json
import os
import random
import shutil
import subprocess
import warnings

import pytest

from eval import data
from eval.react import agent, calculator, docstore, prompts, stores, tools
from export import search_index
import test_react_tools
import web_fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB = os.path.join(ROOT, "web")


def _data_dir():
  try:
    root = data.data_dir()
  except FileNotFoundError:
    return None
  return root if os.path.isdir(os.path.join(root, "react", "hotpotqa")) else None


needs_data = pytest.mark.skipif(_data_dir() is None, reason="eval data dir not found")


def run_node(test_file, fixtures, tmp_path):
  """Runs web/tests/unit/<test_file> with the fixtures; fails with node's report unless every
  test passed and none was skipped."""
  node = shutil.which("node")
  if node is None:
    if os.environ.get("CI") == "1":
      pytest.fail("node is not installed; CI=1 needs the web tools' tests (Node 20+)")
    pytest.skip("node is not installed (the web tools' tests need Node 20+)")
  path = tmp_path / "fixtures.json"
  path.write_text(json.dumps(fixtures), encoding="utf-8")  # ASCII: lone surrogates survive
  result = subprocess.run([node, "--test", os.path.join("tests", "unit", test_file)], cwd=WEB,
                          env={**os.environ, "FRUGAL_WEB_FIXTURES": str(path)},
                          capture_output=True, text=True, timeout=300, check=False)
  report = result.stdout[-8000:] + result.stderr[-4000:]
  assert result.returncode == 0, report
  assert "# skipped 0" in result.stdout and "# fail 0" in result.stdout, report


# ---- calculator ----------------------------------------------------------------------------------

EXPRESSIONS = [
    # values
    "16 - 3 - 4", "9 * 2", "7 / 2", "9 / 3", "0.1 + 0.2", "2 ** 10", "2^10", "17 // 5", "17 % 5",
    "-(3 - 5)", "sqrt(16)", "abs(-2.5)", "round(2.567, 2)", "max(1, 234)", "min(4, 2, 8)",
    "$1,234 + $1", "1,000,000 / 4", "3 × 4", "12 ÷ 4 − 1", "16-3-4=", "10 ** 99", "2 ** -2", "1.5e3",
    "(36 + 24) / 6", "3 * 4 + 2.50", "20 - 14.5", "180 * 0.25", "1234 * 5678", "1/3", "2/3*3", "22/7",
    "1e15", "1e15+0.5", "123456789012.5", "100000000000.5", "1e-5", "0.0001", "1e16 + 1", "-1e-7",
    "3.14159265358979", "10**15 + 0.5", "5e-324", "2.5e-310 * 1", "9.99e99", "10**50 / 3",
    "0 / -5", "-0.0", "abs(-0.0)", "0 ** 0", "0.0 ** 0", "(-2.0) ** 2", "(-2) ** -2", "2 ** 0.5",
    "10 ** 99.5", "10 ** -100", "1.0000001 ** 100", "99 ** 50", "abs(-5) ** 100", "0.00063 ** 100",
    "-2**2", "2**3**2", "2^3^2", "7 // -2", "-7 % 3", "7.5 // -2", "-7.5 % 2", "1 // 0.3", "-1 % 0.3",
    "-0.0 // 1", "0.0 // -1", "round(2.5)", "round(0.5)", "round(1.5)", "round(-2.5)", "round(-0.4)",
    "round(2.675, 2)", "round(0.125, 2)", "round(1234, -2)", "round(1250, -2)", "round(-150, -2)",
    "round(123.456, -1)", "round(1e20, -21)", "round(5e-324, 100)", "round(1.5, -0)",
    "max(10**20, 1e20)", "min(1e20, 10**20)", "max(1,000, 2)", "(1,234)", "12,345,678",
    "1,000.5 + 2", "0x1F", "0o17", "0b101", "1_000", "00", "0_0", "1.e5", "1e1_0", "1 # note",
    "(1 +\n 2)", "1 + \\\n2", "1\n# c", "(1\r+2)", "1\f+2", "ｓｑｒｔ(4)", "5$", "$5.50 * 2",
    "3 × 4 ÷ 2", "1 −− 1", "   12   ==  ", "- - 1", "+-+1", "2**-1", "(" * 30 + "1" + ")" * 30,
    "-" * 150 + "1", "1+" * 60 + "1",
    # refused
    "__import__('os').system('ls')", "().__class__.__bases__", "x + 1", "lambda: 1", "'a' * 3",
    "[1, 2]", "1, 2", "True + 1", "9**9**9", "10**100000", "10 ** 100", "2 ** -101", "1e400",
    "1" * 300, "(-8) ** (1 / 3)", "1 / 0", "20%", "180 * 25%", "max(1,234)", "round(1.5, ndigits=1)",
    "min(*[1, 2])", "open('/etc/passwd')", "", "   ", "$", "1 if 1 else 2", "[i for i in range(9)]",
    "a.b", "{1: 2}", "abs()", "f'{1}'", "(9) ** (99 ** 99)", "0 ** -1", "0.0 ** -0.5", "sqrt(-1)",
    "1e-50 ** -100", "(-1e-99) ** -99.5", "(-2) ** 0.5", "1e308 * 10", "1e100", "1e99*10",
    "-(10**100)", "10**100 - 1", "9" * 101, "99 ** 51", "10.0 ** 100", "10 ** 100.0", "2 ** 332",
    "10 ** -101", "2.0 ** -1074", "round(1.5, 2.0)", "round(1.5, 101)", "round()", "round(1,2,3)",
    "sqrt(1, 2)", "sqrt()", "sqrt", "sqrt(16", "sqrt(*a)", "max(*a, *b)", "min(1, *a)", "print(1)",
    "sqrt(x=1)", "a.b(1)", "x(1)", "f(1)(2)", "max(" + ", ".join(["1"] * 21) + ")", "3 // 0.0", "3 % 0",
    "(a := 1)", "a := 1", "await x", "(yield 1)", "(yield)", "(yield from x)", "(yield a, b)",
    "f(a=1, a=2)", "lambda x, x: 1", "f(x for x in y, 1)", "1if 1 else 2", "1or 2", "1abc", "0x1j",
    "1__0", "1_", "01", "1._5", "1_.5", "1.5j", "1j", "0j", "1e16j", "2.0j", "1..real", "1.real",
    "1 .real", "1 +\n 2", "1\n2", "1\r2", "1\x0b+2", "1\xa0+2", "\x00", "1 + \x00", "'a'", "b'a'",
    "'a' b'b'", "f'{1}' 'a'", "...", "None", "True", "False * 2", "x[1:2, ::3]", "f(*a, **k)",
    "f(**k, *a)", "f(a=1, b)", "[*a]", "{**a}", "{1, 2}", "{}", "()", "(1,)", "not 1", "~1", "1 < 2",
    "1 @ 2", "1 << 2", "1 & 2", "1 | 2", "\u0661 + 1", "1,23", "1,0000", "٣,٤٥٦", "1 ,234",
    "'\\u00e9'", "'\\x85'", "'\u200b'", "'a\\tb'", "b'\\xff'", "b'é'", "'\\777'", "'\\d'", "r'\\d'",
    "'''a\nb'''", "'a\\\nb'", "'a\nb'", "'it''s'", '"a\'b"', "'\\x00'", "u'x'", "rb'x'", "bu'x'",
    "'\\N{DASH}'", "f'{x!r}'", "f'{'", "f'}'", "f'{{}}'", "f'{1!x}'", "f'{1:>{2}}'", "f'{}'",
    "f'{ }'", "f'{#}'", "f'{a b}'", "f'{1}}'", "(1,)+1", "a if b else c", "x for x in y",
    "(x for x in y)", "{x for x in y}", "{x: 1 for x in y}", "[x for 1 in y]", "[x for a.b in y]",
    "[x for (a, *b) in y if c if d for e in f]", "[x async for x in y]", "lambda *, a: 1",
    "lambda *: 1", "lambda a=1, b: 1", "lambda a, /, b: 1", "lambda /: 1", "lambda **k, a: 1",
    "lambda **k,: 1", "lambda *a, *b: 1", "lambda a, *, b=1, c: 1", "f(*a, b=1, *c)", "f(b=1, *c)",
    "f(**a, b=1)", "f(x for x in y,)", "f(a for a in b for c in d)", "a[1][2]", "a[:]", "a[::]",
    "a[1:2:3:4]", "a[*b]", "a[]", "(*a)", "(*a,)", "*a", "*a, b", "a, *b", "{**a, 'b': 1}",
    "{1: *a}", "(a := 1, 2)", "f(a := 1)", "(a.b := 1)", "1 < 2 < 3", "1 not in 2", "1 is not 2",
    "1 <> 2", "not not 1", "1 + not 2", "-await x", "await -x", "2 ** -x", "x.1", "1.__class__",
    "ab'c'", "'a' 'b' 'c'", "b'a' b'b'", "1\\", "1 \\ 2", "if", "else", "None + 1", "1;2", "1:2",
    "1 = 2", "1 == 2", "x = 1", "\ufeff1+1", "\ud800", "π * 2", "2 apples", "5 + 3 = 8", "3 * x",
    "12 * 15 = ", "(12 + 3", "12 + 3)", "Calculate[1 + 1]", "4 + 4\n\n", "1e", "1e+", "0b12", "0o8",
    "0x", "0_x", "00.5", "01.5", "01e5", "01j",
]


def _random_expressions(seed, n):
  """Arithmetic like the agent writes, token soup and character soup: a wide net for parser and
  number-formatting differences."""
  rng = random.Random(seed)
  numbers = ["0", "1", "2", "3", "7", "10", "12", "100", "0.5", "1.5", "2.25", "1e3", "1e-3", "3.0",
             "99", "1_000", "0x1F", "1j", "1e308", "9" * 30, "0.1", "1,234", "$5", "2.675", "1e15",
             "123456789.987", "5e-324", "1.", ".5", "1e16", "333333333333.5", "1e-7"]

  def arithmetic(depth):
    r = rng.random()
    if depth > 3 or r < 0.3:
      return rng.choice(numbers)
    if r < 0.6:
      op = rng.choice(["+", "-", "*", "/", "//", "%", "**", "^"])
      return f"({arithmetic(depth + 1)} {op} {arithmetic(depth + 1)})"
    if r < 0.7:
      return rng.choice(["-", "+", "- "]) + arithmetic(depth + 1)
    if r < 0.85:
      args = ", ".join(arithmetic(depth + 1) for _ in range(rng.randint(0, 3)))
      return f"{rng.choice(['sqrt', 'abs', 'round', 'min', 'max'])}({args})"
    return f"{arithmetic(depth + 1)} {rng.choice(['+', '-', '*', '/'])} {arithmetic(depth + 1)}"

  tokens = numbers + ["+", "-", "*", "/", "//", "%", "**", "×", "÷", "−", "@", "<<", "&", "|", "<",
                      "==", "and", "or", "if", "else", "not", "in", "is", ",", ":", "=", ":=", ".",
                      "sqrt", "abs", "round", "min", "max", "x", "lambda", "(", ")", "[", "]", "{",
                      "}", "'a'", "b'c'", "f'{1}'", "...", "None", "for", "await", "yield", "#",
                      "\\", "\n", "\t", " ", "π", "é"]
  characters = "0123456789+-*/%().,_ eExXjJ=$^abfr'\"[]{}:!<>&|~@#\\\n"

  def float_text():
    k = rng.random()
    if k < 0.4:
      return repr(rng.uniform(-1e6, 1e6))
    if k < 0.7:
      return repr(rng.randint(-10**6, 10**6) / rng.choice([2, 4, 8, 10, 100, 1000, 3]))
    if k < 0.85:
      return str(rng.randint(-10**rng.randint(1, 60), 10**rng.randint(1, 60)))
    return repr(rng.choice([0.5, 1.5, 2.5, -2.5, 0.125, 0.375, 1e-300, 1e300, 2.675, 1.005]))

  out = []
  for i in range(n):
    a, b = float_text(), float_text()
    out.append([
        arithmetic(0),
        "".join(rng.choice(tokens) + rng.choice(["", " "]) for _ in range(rng.randint(1, 8))),
        "".join(rng.choice(characters) for _ in range(rng.randint(1, 12))),
        rng.choice([f"({a}) / ({b})", f"({a}) // ({b})", f"({a}) % ({b})", f"({a}) * ({b})",
                    f"round({a}, {rng.randint(-20, 20)})", f"round({a})", f"min({a}, {b})",
                    f"sqrt(abs({a}))", f"({a}) ** {rng.choice(['0.5', '2', '3', '-1', '1.5', '-0.5'])}"]),
    ][i % 4])
  return out


def test_calculator_matches_python(tmp_path):
  expressions = EXPRESSIONS + _random_expressions(0, 3000)
  with warnings.catch_warnings():  # ast.parse warns about "1if", "\\d" and the like
    warnings.simplefilter("ignore")
    cases = [[e, calculator.calculate(e)] for e in expressions] + [[None, calculator.calculate(None)]]
  assert sum(not v.startswith("Error") for _, v in cases) > 1000  # plenty of values, not only errors
  run_node("calculator.test.mjs", {"calculator": cases}, tmp_path)


# ---- search / lookup -----------------------------------------------------------------------------

_PAGES = {  # test_react_tools' pages, plus titles that test normalisation, entities and ties
    **test_react_tools.PAGES,
    "Straße": ["A Straße is a street."],
    "Tom & Jerry": ["Tom and Jerry is a cartoon.", "  ", "Tom is a cat."],
    "'J' Is for Judgment": ["It is a novel by Sue Grafton."],
    "1984 (novel)": ["Nineteen Eighty-Four is a novel by George Orwell.", "It was published in 1949."],
    "milhouse van houten": ["A second page whose title differs only in case."],
    "Σίσυφος": ["Sisyphus in Greek."],
    **{f"Twin {c}": ["Twin pages score the same: ties go to the earlier page."] for c in "ABCDEFG"},
}
_QUERIES = ["Milhouse Van Houten", "milhouse van houten", "  Milhouse_Van   HOUTEN ", "Milhouse",
            "High Plains elevation", "Richard Nixon", "richard nixon", "Nixon", "Zebra", "zebras",
            "STRASSE", "strasse", "Tom &amp; Jerry", "tom & jerry", "Tom &amp Jerry", "&#39;J&#39; Is for Judgment",
            "1984 (novel)", "1984", "novel", "the of and", "", "x", "ΣΊΣΥΦΟΣ", "σίσυφος",
            "Colorado orogeny eastern", "Lisa", "Bart Simpson's best friend", "United States",
            "Plains Plains Plains", "mountain building episode", "twin", "Twin pages tie"]
_NORMALISE = ["Soul_Food", "soul  food", "Tom &amp; Jerry", "Tom &amp Jerry", "&lt;b&gt;",
              "&#39;x&#x27;", "&#0;", "&#128;", "&#x80;", "&#13;", "&#xD800;", "&#99999999;", "&#1;",
              "&#xFFFE;", "&#65", "&ndash;", "&quot;J&quot; Is for Judgment", "Straße", "ﬁnal", "ΣΑΣ",
              "İstanbul", "ᏣᎳᎩ", "ｆｕｌｌ", "a\u3000b", "a\x85b", "ǅ", "ﬀ", "ŉ", "Ǆ", "\u212a",
              "µ", "&unknown;", "&ampx", "&amp;amp;", "a\u00adb", "ℌ", "①", "A\tB\nC", " ", "",
              "&euro;5", "&#x1F600;", "Ⅻ", "ΐ", "ẞ"]


def _sessions(store, queries):
  """Per query a fresh Browser: search, then lookups that cycle and restart; the Python
  observations alongside."""
  sessions = []
  for query in queries:
    browser = tools.Browser(store)
    steps = [("lookup", "the"), ("search", query), ("lookup", "was"), ("lookup", "was"),
             ("lookup", "WAS"), ("lookup", "named"), ("lookup", "named"), ("lookup", "named"),
             ("lookup", "zzz"), ("search", query.split(" ")[0] if query else "x"), ("lookup", "the")]
    sessions.append([[tool, arg, getattr(browser, tool)(arg)] for tool, arg in steps])
  return sessions


def _hotpotqa_queries(root, first, last):
  rows, _, _ = stores.read_parts(root, stores.HOTPOTQA_FILES, ("question", "context"), last + 1)
  queries = []
  for row in rows[first:last + 1]:
    words = row["question"].rstrip("?").split()
    queries += [row["question"], " ".join(words[:3]), " ".join(words[-3:]), row["context"][0][0],
                row["context"][1][0].lower(), row["context"][2][0].split(" (")[0]]
  return queries


def test_docstore_matches_python(tmp_path):
  store = docstore.DocStore(_PAGES)
  index = search_index.store_index(store, "test pages")
  stores_fixture = [dict(spec="test pages", index=index, sessions=_sessions(store, _QUERIES))]
  empty = docstore.DocStore({})
  stores_fixture.append(dict(spec="empty", index=search_index.store_index(empty),
                             sessions=_sessions(empty, ["X", ""])))
  root = _data_dir()
  if root is not None:  # a real collection: BM25 ranking over 100 pages
    real, _ = stores.load_spec("distractor:0-9", data.data_dir())
    stores_fixture.append(dict(spec="distractor:0-9", index=search_index.docs_index("distractor:0-9"),
                               sessions=_sessions(real, _hotpotqa_queries(root, 0, 9))))
  fixtures = {"docstore": {
      "normalise": dict(index=index, titles=[[t, docstore.normalise_title(t)] for t in _NORMALISE]),
      "stores": stores_fixture}}
  misses = [s for f in stores_fixture for session in f["sessions"] for s in session
            if s[2].startswith("Could not find") and s[2] != "Could not find [X]. Similar: []."]
  assert len(misses) > 20  # the BM25 ranking is exercised, not just exact hits
  run_node("docstore.test.mjs", fixtures, tmp_path)


# ---- the Episode protocol ------------------------------------------------------------------------

def _react_cases():
  """(name, section, question, completions, abort_at): search and lookup read the test pages."""
  gsm8k = search_index.react_section()
  with_docs = search_index.react_section(docs="distractor:0")
  act = search_index.react_section(mode="act")
  fireact = search_index.react_section(mode="fireact", template="chatml", system="Use the tools.",
                               docs="distractor:0")
  cases = [
      ("react: calculate then finish", gsm8k, "What is 1234 * 5678?",
       [" I need 1234 * 5678.\nAction 1: Calculate[1234 * 5678]",
        " The product is 7006652.\nAction 2: Finish[7006652]"], None),
      ("react: a thought without an action, then the action turn", gsm8k, "What is 3 * 4?",
       [" I should multiply 3 by 4.\nmore thinking", " Calculate[3 * 4]\nextra line",
        " It is 12.\nAction 2: Finish[ 12 ]"], None),
      ("react: invalid, malformed, empty and unknown actions", gsm8k, "What is 2 + 2?",
       [" Hmm.\nAction 1: Foo[bar]", " Try.\nAction 2: Calculate 3+4", " Again.\nAction 3:",
        " Percent.\n  Action 4 : calculate[20%]\nObservation 4: made up",
        "\nAction 5: Search[two]", " ok\nAction 6: Finish[]"], None),
      ("react: the step limit", gsm8k, "Count to eight.",
       [f" Step {i}.\nAction {i}: Calculate[{i} + 1]" for i in range(1, 9)], None),
      ("react: search and lookup over the docs", with_docs, "Who was Milhouse named after?",
       [" Search it.\nAction 1: Search[Milhouse]", " Open it.\nAction 2: Search[milhouse_van houten]",
        " Look.\nAction 3: Lookup[named]", " Again.\nAction 4: Lookup[named]",
        " Again.\nAction 5: Lookup[named]", " Math.\nAction 6: Calculate[37 * 2]",
        " Done.\nAction 7: Finish[Richard Nixon]"], None),
      ("react: the context fills up", gsm8k, "What is 1 + 1?",
       [" Add.\nAction 1: Calculate[1 + 1]", " unused"], 1),
      ("act: actions and an invalid one", act, "What is 6 * 7?",
       [" Calculate[6 * 7]", " Lookup[x]", " Finish[42]\nmore"], None),
      ("act: the step limit", act, "Loop.", [" Calculate[1]"] * 8, None),
      ("fireact: chat turns, a turn without an action, finish", fireact, "What is 6 * 7?",
       ["Thought: multiply\nAction: calculate[6 * 7]", "no action line here",
        " Thought 3 : search it\nAction: search[Zebra]", "Thought: done\nAction: finish[42]"], None),
      ("fireact: the step limit", fireact, "Loop.",
       ["Thought: again\nAction: calculate[1]"] * 8, None),
  ]
  for mode in ("standard", "cot"):
    section = search_index.react_section(mode=mode)
    cases += [(f"{mode}: an answer", section, "What is 6 * 7?",
               [" Six sevens. Answer: 42\nAnswer: 43 \nmore"], None),
              (f"{mode}: no answer", section, "What is 6 * 7?", [" \n"], None)]
  cases.append(("react: the browser test's question, as SmolLM2 answered it",
                search_index.react_section(**web_fixtures.REACT_SECTION), web_fixtures.REACT_QUESTION,
                [t["completion"] for t in web_fixtures.REACT_TURNS], None))
  if _data_dir() is not None:
    hotpotqa = search_index.react_section(prompts="hotpotqa", docs="distractor:0")
    cases.append(("react: the HotpotQA prompt", hotpotqa, "Who was Milhouse named after?",
                  [" Search.\nAction 1: Search[Richard Nixon]", " Done.\nAction 2: Finish[Nixon]"],
                  None))
  return cases


def test_episode_protocol_matches_python(tmp_path):
  store = docstore.DocStore(_PAGES)
  index = search_index.store_index(store, "test pages")
  fixtures = []
  for name, section, question, completions, abort_at in _react_cases():
    expected = web_fixtures.scripted_run(section, question, completions, store, abort_at)
    fixtures.append(dict(name=name, section=section, question=question, completions=completions,
                         abort_at=abort_at, docs=index, expected=expected))
  reasons = {f["expected"]["trajectory"]["finish_reason"] for f in fixtures}
  assert reasons == {"finish", "step_limit", "context_full", "no_answer"}
  run_node("react.test.mjs", {"react": fixtures}, tmp_path)


def test_recorded_trajectory_is_the_python_episode():
  """REACT_TRAJECTORY (the browser test's expectation) is what the Python Episode makes of the
  recorded completions, turn texts and stop strings included."""
  section = search_index.react_section(**web_fixtures.REACT_SECTION)
  completions = [t["completion"] for t in web_fixtures.REACT_TURNS]
  run = web_fixtures.scripted_run(section, web_fixtures.REACT_QUESTION, completions)
  assert run["turns"] == [{k: v for k, v in t.items() if k != "completion"}
                          for t in web_fixtures.REACT_TURNS]
  expected = {k: v for k, v in web_fixtures.REACT_TRAJECTORY.items() if k not in ("turns", "correct", "gold")}
  assert {k: run["trajectory"][k] for k in expected} == expected
  assert run["trajectory"]["actions"][0].startswith("Calculate[")


# ---- export/search_index.py ----------------------------------------------------------------------

def test_react_section_carries_the_prompt_and_the_episode_turns():
  section = search_index.react_section()
  assert section["prompt"] == prompts.fewshot("", "gsm8k", "react")
  assert section["tools"] == ["calculate"] and section["max_steps"] == 8
  episode = web_fixtures.python_episode(section, "q")
  first = episode.start()
  assert section["turns"]["thought"] == {"stop": list(first.stop), "max_new_tokens": first.max_new_tokens}
  assert section["turns"]["action"] == {"stop": ["\n"], "max_new_tokens": agent.ACTION_TOKENS}
  json.dumps(section)  # goes into manifest.json
  with_docs = search_index.react_section(docs="distractor:3", mode="act")
  assert with_docs["tools"] == ["calculate", "search", "lookup"] and with_docs["docs"] == "distractor:3"
  assert set(with_docs["turns"]) == {"action"}


@pytest.mark.parametrize("kwargs,message", [
    (dict(prompts="fever"), "react prompts 'fever'"),
    (dict(mode="webthink"), "react mode 'webthink'"),
    (dict(tools=["search"]), "need docs"),
    (dict(tools=["google"]), r"unknown \['google'\]"),
    (dict(docs="distractor:9-3"), "store spec 'distractor:9-3'"),
    (dict(mode="fireact"), "multi-turn chat template"),
])
def test_react_section_refuses_bad_settings(kwargs, message):
  with pytest.raises(ValueError, match=message):
    search_index.react_section(**kwargs)


def test_docs_spec_parsing():
  assert stores.parse_spec("wiki") == ("wiki", None)
  assert stores.parse_spec("distractor:7") == ("distractor", (7, 7))
  assert stores.parse_spec("distractor:0-99") == ("distractor", (0, 99))
  for bad in ("distractor", "distractor:", "distractor:-1", "wiki:1", "distractor:a-b", "fever"):
    with pytest.raises(ValueError, match="expected wiki, distractor:N or distractor:A-B"):
      stores.parse_spec(bad)


def test_docs_index_names_the_missing_data(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    search_index.docs_index("distractor:0", data_dir=str(tmp_path))


@needs_data
def test_docs_index_is_the_python_store_and_small(tmp_path):
  index = search_index.docs_index("distractor:0")
  store, _ = stores.load_spec("distractor:0", data.data_dir())
  assert index["titles"] == store.titles and index["sentences"] == [store.pages[t] for t in store.titles]
  assert {key: index["titles"][i] for key, i in index["keys"]} == store._by_key
  size = search_index.write_docs_index(tmp_path / "docs.json")
  assert json.loads((tmp_path / "docs.json").read_text(encoding="utf-8"))["spec"] == search_index.DEFAULT_DOCS
  assert size < 2_000_000, f"the default docs index is {size} bytes; the page downloads all of it"
  with pytest.raises(ValueError, match="questions 0..1583"):
    search_index.docs_index("distractor:5000")
