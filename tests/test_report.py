"""eval/report.py: report.json round-trips, report.md carries each number with its facts, plots are
real PNGs (or skipped with a note), compare() aligns tasks across runs and names bad paths."""

import json

import pytest

from eval import api
from eval import report

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MODEL = dict(name="tiny-test", source="runs/tiny", params=1234567, tokenizer="bpe-400",
              dtype="bfloat16")


def _results(data_dir):
  return [
      api.result("arc_easy", {"acc": 0.4567, "acc_norm": 0.5}, stderr={"acc": 0.0123},
                 samples=100, total=2376, skipped=2, shots=0,
                 data_file=str(data_dir / "arc" / "easy.jsonl"),
                 normalisation="acc_norm: log-likelihood / continuation characters", seconds=12.3),
      api.result("wikitext", {"ppl": 21.04321, "bpb": 1.234567}, samples=50, total=50, shots=0,
                 data_file="wikitext/test.jsonl", normalisation="bpb: nats / UTF-8 bytes / ln 2",
                 seconds=4.0),
      api.result("hotpotqa", {"em": 0.25, "f1": 0.4}, stderr={"em": 0.05}, mode="standard",
                 samples=40, total=40, shots=6, data_file="hotpotqa/dev.jsonl",
                 normalisation="SQuAD answer normalisation", seconds=30.0),
      api.result("hotpotqa", {"em": 0.35, "f1": 0.5}, mode="react", samples=40, total=40,
                 shots=6, data_file="hotpotqa/dev.jsonl",
                 normalisation="SQuAD answer normalisation", seconds=120.0,
                 extra={"episodes_per_minute": 17.5}),
  ]


def _is_png(path):
  return path.read_bytes()[:8] == _PNG_MAGIC


def _metrics_jsonl(workdir):
  rows = [{"step": 10, "loss": 8.0, "z_loss": 60.0},
          {"step": 20, "loss": 7.0, "eval_loss": 7.2, "eval_bpb": 2.9},
          {"step": 30, "loss": None}]
  workdir.mkdir()
  (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  return workdir / "metrics.jsonl"


def test_write_round_trips_and_formats_numbers_with_their_facts(tmp_path):
  results = _results(tmp_path / "data")
  out = tmp_path / "report"
  report.write(str(out), _MODEL, results, metrics_jsonl=str(_metrics_jsonl(tmp_path / "run")),
               data_dir=str(tmp_path / "data"))

  saved = json.loads((out / "report.json").read_text())
  assert saved["model"] == _MODEL
  assert saved["results"] == results
  assert saved["created"] and "commit" in saved

  md = (out / "report.md").read_text()
  assert "tiny-test" in md and "runs/tiny" in md and "1,234,567" in md  # the header is traceable
  arc = next(line for line in md.splitlines() if line.startswith("| arc_easy"))
  assert "acc = 45.7% ± 1.2%" in arc and "acc_norm = 50.0%" in arc
  assert "100 / 2376 (limit)" in arc and "| 2 |" in arc  # samples of total, skipped rows
  assert "log-likelihood / continuation characters" in arc
  assert "arc/easy.jsonl" in arc and str(tmp_path) not in arc  # relative to the data dir
  wiki = next(line for line in md.splitlines() if line.startswith("| wikitext"))
  assert "ppl = 21.043" in wiki and "bpb = 1.2346" in wiki and "50 / 50 |" in wiki
  react = next(line for line in md.splitlines() if line.startswith("| hotpotqa | react"))
  assert "em = 35.0%" in react and "| 6 |" in react and react.endswith("| 17.5 |")
  standard = next(line for line in md.splitlines() if line.startswith("| hotpotqa | standard"))
  assert standard.endswith("| 80.0 |")  # 40 episodes in 30 s, computed from the record

  for png in ("scores.png", "modes.png", "training.png"):
    assert _is_png(out / png), png
    assert f"]({png})" in md
  assert "Skipped:" not in md


def test_plots_without_data_are_skipped_with_a_note(tmp_path):
  results = [r for r in _results(tmp_path) if not r["mode"]]
  empty_run = tmp_path / "run"
  empty_run.mkdir()
  (empty_run / "metrics.jsonl").write_text(json.dumps({"step": 1, "learning_rate": 0.1}) + "\n")
  report.write(str(tmp_path / "a"), _MODEL, results, metrics_jsonl=str(empty_run))
  report.write(str(tmp_path / "b"), _MODEL, results)

  a = (tmp_path / "a" / "report.md").read_text()
  assert _is_png(tmp_path / "a" / "scores.png")
  assert not (tmp_path / "a" / "modes.png").exists()
  assert not (tmp_path / "a" / "training.png").exists()
  assert "Skipped: no agent results" in a
  assert "has no train loss or eval rows" in a
  assert "Skipped: no metrics.jsonl given" in (tmp_path / "b" / "report.md").read_text()

  # Rewriting a report removes a plot the new data no longer supports.
  report.write(str(tmp_path / "c"), _MODEL, _results(tmp_path))
  assert _is_png(tmp_path / "c" / "modes.png")
  report.write(str(tmp_path / "c"), _MODEL, results, metrics_jsonl=str(tmp_path / "nowhere"))
  assert not (tmp_path / "c" / "modes.png").exists()
  assert "nowhere does not exist" in (tmp_path / "c" / "report.md").read_text()


def test_nan_is_written_as_null_and_shown_as_na(tmp_path):
  results = [api.result("t", {"acc": float("nan")}, samples=0, total=5, shots=0,
                        data_file="t.jsonl", normalisation="none", seconds=0.0)]
  report.write(str(tmp_path), _MODEL, results)
  assert json.loads((tmp_path / "report.json").read_text())["results"][0]["metrics"]["acc"] is None
  assert "acc = n/a" in (tmp_path / "report.md").read_text()


def test_write_rejects_a_record_missing_facts(tmp_path):
  with pytest.raises(ValueError, match=r"result 0 \(arc\) lacks \['samples'"):
    report.write(str(tmp_path), _MODEL, [{"task": "arc", "metrics": {"acc": 0.5}}])


def test_compare_aligns_tasks_and_marks_missing_ones(tmp_path, capsys):
  results = _results(tmp_path)
  report.write(str(tmp_path / "a"), dict(_MODEL, name="model-a"), results)
  report.write(str(tmp_path / "b"), dict(_MODEL, name="model-b"),
               [dict(r, metrics={k: v / 2 for k, v in r["metrics"].items()})
                for r in results if r["task"] != "wikitext"])

  out = tmp_path / "cmp.md"
  md = report.compare([str(tmp_path / "a"), str(tmp_path / "b" / "report.json")], str(out))
  assert out.read_text() == md and _is_png(tmp_path / "cmp.png")
  assert "model-a" in md and "model-b" in md
  lines = md.splitlines()
  assert "| Task | Mode | Metric | a | b |" in lines
  assert "| arc_easy | — | acc | 45.7% ± 1.2% | 22.8% ± 1.2% |" in lines
  assert "| wikitext | — | ppl | 21.043 | — |" in lines  # b has no wikitext
  assert "| hotpotqa | react | em | 35.0% | 17.5% |" in lines

  report.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")])
  assert "| hotpotqa | standard | em | 25.0% ± 5.0% | 12.5% ± 5.0% |" in capsys.readouterr().out


def test_compare_names_a_path_without_a_report(tmp_path):
  report.write(str(tmp_path / "a"), _MODEL, _results(tmp_path))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'empty'}: no report.json"):
    report.compare([str(tmp_path / "a"), str(tmp_path / "empty")])
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "report.json").write_text("{not json")
  with pytest.raises(ValueError, match="bad/report.json is not valid JSON"):
    report.compare([str(tmp_path / "bad")])
  (tmp_path / "bad" / "report.json").write_text(json.dumps({"results": []}))
  with pytest.raises(ValueError, match="bad/report.json is not a report"):
    report.compare([str(tmp_path / "bad")])
