"""Benchmark reports: report.json, report.md and PNG plots for one model; several runs side by side.

  write(out_dir, model_info, results, metrics_jsonl=None)  one model's report
  compare([run_a, run_b, ...], out_path=None)             several report.json, one markdown table
  python -m eval.report compare runs/a runs/b [--out x.md]

`results` are `eval.api.result(...)` records, stored unchanged in report.json so every number in
report.md can be traced back to its record: samples scored out of the file's total, shots,
normalisation, data file, seconds. A plot without data is skipped and report.md says why.
"""

import argparse
import datetime
import json
import math
import os

# Figure objects, not pyplot: PNGs render on the Agg canvas and no global backend is switched.
from matplotlib.figure import Figure

from eval.react import agent
from input_pipeline import sources
from training import metrics as metrics_lib, run_info

REPORT_FILE = "report.json"
_REQUIRED = ("task", "metrics", "samples", "total", "shots", "data_file", "normalisation",
             "seconds")
# A task's main metric (plots show only it): the first of these it has, else its first metric.
_MAIN_METRICS = ("acc_norm", "acc", "em", "exact_match", "f1", "pass@1", "bpb", "ppl")
_RATE_WORDS = ("acc", "em", "f1", "exact", "match", "pass", "rate", "correct", "success")
_NATS_OR_BITS = ("ppl", "perplexity", "bpb", "bpc", "loss", "nll")
_TRAIN_LOSS_KEYS = ("loss", "train/loss", "train_loss")


# ---------------------------------------------------------------- numbers
def _is_rate(metric):
  """Accuracy-like metrics (fractions in [0, 1]) are printed and plotted as percentages."""
  words = metric.lower().replace("/", "_").replace("@", "_").split("_")
  return any(w in _RATE_WORDS for w in words)


def _number(metric, value):
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return "n/a"
  if _is_rate(metric):
    return f"{100 * value:.1f}%"
  if any(w in metric.lower() for w in _NATS_OR_BITS):
    return f"{value:.3f}" if "ppl" in metric or "perplexity" in metric else f"{value:.4f}"
  return str(value) if isinstance(value, int) else f"{value:.4g}"


def format_metric(metric, value, stderr=None):
  """`acc = 45.2% ± 1.3%`, `bpb = 1.2345 ± 0.0100`, `ppl = 21.040`."""
  text = f"{metric} = {_number(metric, value)}"
  return text if stderr is None else f"{text} ± {_number(metric, stderr)}"


def main_metric(record):
  found = [m for m in _MAIN_METRICS if m in record["metrics"]]
  return found[0] if found else next(iter(record["metrics"]))


def _finite(value):
  """NaN and infinities -> None, so report.json is strict JSON (like metrics.jsonl)."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  return value


# ---------------------------------------------------------------- facts
def _relative(path, data_dir):
  """`path` relative to the data dir when it lies inside it, else as given."""
  if not path or not data_dir or not os.path.isabs(path):
    return path
  rel = os.path.relpath(path, data_dir)
  return path if rel.startswith("..") else rel


def _check(results):
  for i, record in enumerate(results):
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
      raise ValueError(f"result {i} ({record.get('task', '?')}) lacks {missing}; build results "
                       "with eval.api.result(...)")
    if not record["metrics"]:
      raise ValueError(f"result {i} ({record['task']}) has no metrics")


# ---------------------------------------------------------------- plots
def _bars(path, title, labels, series, units):
  """Grouped bars: one group per label, one bar per series entry; one panel per unit.

  series: {name: [(value, stderr) | None per label]}; units: per label, "%" (values are fractions,
  drawn as percent) or a metric name, so a panel never mixes scales (accuracy vs perplexity).
  """
  panels = list(dict.fromkeys(units))
  bars_per_panel = [units.count(u) for u in panels]  # panel widths follow their bar counts
  fig = Figure(figsize=(max(4.0, 1.2 * len(labels)) + 3, 4.5))
  axes = fig.subplots(1, len(panels), squeeze=False,
                      gridspec_kw=dict(width_ratios=bars_per_panel))
  width = 0.8 / len(series)
  for ax, unit in zip(axes[0], panels):
    rows = [i for i, u in enumerate(units) if u == unit]
    scale = 100 if unit == "%" else 1
    for j, (name, values) in enumerate(series.items()):
      xs, ys, errs = [], [], []
      for x, i in enumerate(rows):
        if values[i] is not None and values[i][0] is not None:
          xs.append(x + (j - (len(series) - 1) / 2) * width)
          ys.append(scale * values[i][0])
          errs.append(math.nan if values[i][1] is None else scale * values[i][1])
      ax.bar(xs, ys, width, yerr=errs, capsize=3, label=name)
    ax.set_xticks(range(len(rows)), [labels[i] for i in rows], rotation=30, ha="right")
    ax.set_ylabel("percent" if unit == "%" else unit)
    ax.grid(axis="y", alpha=0.3)
  if len(series) > 1:
    axes[0][-1].legend(fontsize=8)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def _value(record, metric):
  return record["metrics"].get(metric), record.get("stderr", {}).get(metric)


def _label(record, metric):
  mode = f" [{record['mode']}]" if record.get("mode") else ""
  return f"{record['task']}{mode}\n{metric}"


def _plot_scores(path, model_name, results):
  labels = [_label(r, main_metric(r)) for r in results]
  units = ["%" if _is_rate(main_metric(r)) else main_metric(r) for r in results]
  values = [_value(r, main_metric(r)) for r in results]
  _bars(path, f"{model_name}: main metric per task", labels, {model_name: values}, units)


def _plot_modes(path, model_name, results):
  """Standard vs CoT vs Act vs ReAct; returns False (nothing drawn) when no result has a mode."""
  by_task = {}
  for r in results:
    if r.get("mode"):
      by_task.setdefault(r["task"], {})[r["mode"].lower()] = r
  if not by_task:
    return False
  tasks = list(by_task)
  metrics = [main_metric(next(iter(by_task[t].values()))) for t in tasks]
  modes = [m for m in agent.MODES if any(m in by_task[t] for t in tasks)]  # plot order
  modes += sorted({m for t in tasks for m in by_task[t]} - set(modes))
  series = {m: [_value(by_task[t][m], metric) if m in by_task[t] else None
                for t, metric in zip(tasks, metrics)] for m in modes}
  units = ["%" if _is_rate(m) else m for m in metrics]
  _bars(path, f"{model_name}: prompting modes", [f"{t}\n{m}" for t, m in zip(tasks, metrics)],
        series, units)
  return True


def _read_curves(metrics_jsonl):
  """{key: (steps, values)} for the train loss and every eval metric logged with numbers."""
  workdir = metrics_jsonl
  if not os.path.isdir(metrics_jsonl):
    workdir, name = os.path.split(metrics_jsonl)
    if name != metrics_lib.METRICS_FILE:
      raise ValueError(f"{metrics_jsonl}: expected a workdir or its {metrics_lib.METRICS_FILE}")
  curves = {}
  for row in metrics_lib.read_metrics(workdir):
    for key, value in row.items():
      wanted = key in _TRAIN_LOSS_KEYS or key.startswith(("eval_", "eval/"))
      number = isinstance(value, (int, float)) and not isinstance(value, bool)
      if wanted and number and math.isfinite(value):
        steps, values = curves.setdefault(key, ([], []))
        steps.append(row["step"])
        values.append(value)
  return curves


def _plot_training(path, model_name, curves):
  """Losses (nats/token) in one panel, each other eval metric (e.g. eval_bpb) in its own."""
  panels = {}
  for key in curves:
    panels.setdefault("loss" if key.endswith("loss") else key, []).append(key)
  fig = Figure(figsize=(5 * len(panels), 4))
  axes = fig.subplots(1, len(panels), squeeze=False)
  for ax, (unit, keys) in zip(axes[0], panels.items()):
    for key in keys:
      ax.plot(*curves[key], marker="o" if key.startswith("eval") else None, markersize=3,
              label=key)
    ax.set_xlabel("step")
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(f"{model_name}: training run")
  fig.tight_layout()
  fig.savefig(path, dpi=100)


# ---------------------------------------------------------------- markdown
def _cell(value):
  if value is None or value == "":
    return "—"
  return str(value).replace("|", "\\|").replace("\n", " ")  # one table row per result


def _row(record, data_dir):
  metrics = "<br>".join(format_metric(m, v, record.get("stderr", {}).get(m))
                        for m, v in record["metrics"].items())
  samples = f"{record['samples']} / {record['total']}"
  if record["samples"] < record["total"]:
    samples += " (limit)"
  per_minute = record.get("episodes_per_minute")
  if per_minute is None and record.get("mode") and record["seconds"]:
    per_minute = 60 * record["samples"] / record["seconds"]  # agent throughput, from the record
  cells = (record["task"], record.get("mode"), metrics, samples, record.get("skipped", 0),
           record["shots"], record["normalisation"], _relative(record["data_file"], data_dir),
           f"{record['seconds']:.1f}", None if per_minute is None else f"{per_minute:.1f}")
  return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _markdown(report, plots):
  model = report["model"]
  lines = [f"# Benchmark report: {model.get('name', '?')}", ""]
  for key, value in model.items():
    if key == "params" and isinstance(value, int):
      value = f"{value:,}"
    lines.append(f"- **{key}**: {_cell(value)}")
  lines += [f"- **created**: {report['created']}", f"- **commit**: {_cell(report['commit'])}",
            f"- **data dir**: {_cell(report.get('data_dir'))}", "",
            "Values are means over the scored samples, ± one standard error where the task gives "
            "one. Samples shows scored / in the data file; \"(limit)\" means a subset was scored.",
            "", "| Task | Mode | Metrics | Samples | Skipped rows | Shots | Normalisation | "
            "Data file | Seconds | Episodes/min |", "|" + "---|" * 10]
  lines += [_row(r, report.get("data_dir")) for r in report["results"]]
  lines += ["", "## Plots", ""]
  for title, (file, note) in plots.items():
    lines += [f"### {title}", ""]
    if file:
      lines += [f"![{title}]({file})", ""] + ([f"Data {note}.", ""] if note else [])
    else:
      lines += [f"Skipped: {note}.", ""]
  return "\n".join(lines)


# ---------------------------------------------------------------- public
def write(out_dir, model_info, results, metrics_jsonl=None, data_dir=None):
  """Writes report.json, report.md, scores.png, modes.png and training.png into out_dir.

  model_info: dict(name, source, params, tokenizer, dtype, ...); results: eval.api.result records;
  metrics_jsonl: the training run's metrics.jsonl (or its workdir) for the loss curve;
  data_dir: where data files are shown relative to (default: sources.resolve_data_dir, if any).
  Returns the report dict written to report.json.
  """
  _check(results)
  os.makedirs(out_dir, exist_ok=True)
  report = dict(model=dict(model_info), results=list(results),
                created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                commit=run_info.git_commit(), data_dir=data_dir or sources.resolve_data_dir(""))
  with open(os.path.join(out_dir, REPORT_FILE), "w") as f:
    json.dump(_finite(report), f, indent=1, allow_nan=False)

  name = model_info.get("name", "model")
  for png in ("scores.png", "modes.png", "training.png"):  # a skipped plot leaves no stale file
    if os.path.exists(os.path.join(out_dir, png)):
      os.remove(os.path.join(out_dir, png))
  plots = {}
  if results:
    _plot_scores(os.path.join(out_dir, "scores.png"), name, results)
    plots["Per-task scores"] = ("scores.png", None)
  else:
    plots["Per-task scores"] = (None, "no results")
  drawn = _plot_modes(os.path.join(out_dir, "modes.png"), name, results)
  plots["Standard vs CoT vs Act vs ReAct"] = (
      ("modes.png", None) if drawn else (None, "no agent results (no result has a mode)"))
  found = bool(metrics_jsonl) and os.path.exists(metrics_jsonl)
  curves = _read_curves(metrics_jsonl) if found else {}
  if curves:
    _plot_training(os.path.join(out_dir, "training.png"), name, curves)
    plots["Training curves"] = ("training.png", f"read from {metrics_jsonl}")
  else:
    plots["Training curves"] = (None, "no metrics.jsonl given" if not metrics_jsonl else
                                f"{metrics_jsonl} does not exist" if not found else
                                f"{metrics_jsonl} has no train loss or eval rows")

  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write(_markdown(report, plots))
  return report


def load(path):
  """The report dict from a report.json or the directory holding one; errors name the path."""
  file = os.path.join(path, REPORT_FILE) if os.path.isdir(path) else path
  if not os.path.isfile(file):
    raise FileNotFoundError(f"{path}: no {REPORT_FILE} (write one with eval.report.write)")
  try:
    with open(file) as f:
      report = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{file} is not valid JSON: {e}") from None
  if not isinstance(report, dict) or not {"model", "results"} <= report.keys():
    raise ValueError(f"{file} is not a report: expected an object with 'model' and 'results'")
  try:
    _check(report["results"])
  except (ValueError, TypeError, AttributeError) as e:
    raise ValueError(f"{file}: malformed results: {e}") from None
  return report


def compare(report_paths_or_dirs, out_path=None):
  """Markdown table of several reports: rows = task [mode] / metric, columns = runs.

  A task a run lacks shows "—". With out_path, writes the table there and a PNG of each task's
  main metric beside it (same name, .png). Returns the markdown.
  """
  reports = [load(p) for p in report_paths_or_dirs]
  # A run is named by its directory (runs/a or runs/a/report.json -> "a"); full paths if ambiguous.
  dirs = [p if os.path.isdir(p) else os.path.dirname(p) for p in report_paths_or_dirs]
  names = [os.path.basename(os.path.abspath(d)) for d in dirs]
  if len(set(names)) < len(names):
    names = list(report_paths_or_dirs)
  cells, rows, main = {}, {}, {}  # (task, mode, metric) -> {run: text}; main metric per task
  for name, report in zip(names, reports):
    for r in report["results"]:
      main.setdefault((r["task"], r.get("mode")), main_metric(r))
      for m, v in r["metrics"].items():
        key = (r["task"], r.get("mode"), m)
        rows.setdefault(key, {})[name] = (v, r.get("stderr", {}).get(m))
        cells.setdefault(key, {})[name] = _number(m, v) + (
            "" if r.get("stderr", {}).get(m) is None else f" ± {_number(m, r['stderr'][m])}")

  lines = ["# Comparison", ""]
  for name, path, report in zip(names, report_paths_or_dirs, reports):
    model = report["model"]
    lines.append(f"- **{name}**: {_cell(model.get('name'))} ({_cell(model.get('source'))}), "
                 f"{path}, commit {_cell(report.get('commit'))}")
  lines += ["", "| Task | Mode | Metric | " + " | ".join(_cell(n) for n in names) + " |",
            "|" + "---|" * (3 + len(names))]
  for (task, mode, metric), by_run in cells.items():
    lines.append("| " + " | ".join(_cell(c) for c in (task, mode, metric)) + " | " +
                 " | ".join(_cell(by_run.get(n)) for n in names) + " |")
  markdown = "\n".join(lines) + "\n"

  if out_path:
    with open(out_path, "w") as f:
      f.write(markdown)
    keys = [(t, mo, m) for (t, mo), m in main.items()]
    labels = [f"{t}{f' [{mo}]' if mo else ''}\n{m}" for t, mo, m in keys]
    series = {n: [rows[k].get(n) for k in keys] for n in names}
    if keys:
      _bars(os.path.splitext(out_path)[0] + ".png", "main metric per task", labels, series,
            ["%" if _is_rate(m) else m for _, _, m in keys])
  return markdown


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  commands = parser.add_subparsers(dest="command", required=True)
  cmp = commands.add_parser("compare", help="several runs' report.json side by side")
  cmp.add_argument("runs", nargs="+", help="report.json files or the directories holding them")
  cmp.add_argument("--out", help="also write the table here, and a PNG beside it")
  args = parser.parse_args(argv)
  try:
    print(compare(args.runs, args.out), end="")
  except (FileNotFoundError, ValueError) as e:
    parser.exit(1, f"error: {e}\n")  # the message names the path; a traceback adds nothing


if __name__ == "__main__":
  main()
