"""Supervised fine-tuning examples: instruction rows and conversations -> token ids with a loss mask.

Rows (a JSON array or JSONL file):
  alpaca: {"instruction": str, "input": str (optional), "output": str}
  chat:   {"messages": [{"role": "system" | "user" | "assistant", "content": str}, ...]}
Either format goes through either template:
  alpaca  Stanford Alpaca's prompt (the with-input and no-input variants); the response is the
          output followed by EOS. A chat row must be one user turn (after an optional system turn)
          and one assistant turn.
  chatml  "<|im_start|>{role}\\n{content}<|im_end|>\\n" per message (SmolLM2-Instruct's chat
          template); an alpaca row becomes one user turn (instruction, blank line, input) and one
          assistant turn. Needs <|im_start|> and <|im_end|> to be single special tokens.
An example is (ids, weights) of equal length: weight 1 on the tokens the model learns to produce
(every assistant turn's content and its end token), 0 on the prompt. Pieces are tokenized
separately and concatenated, so a weight never straddles a token.

Rows with missing fields, wrong types or an empty response are skipped and counted (by reason),
never trained on; an example longer than `max_length` tokens is skipped and counted too (cutting it
would teach the model to stop mid-answer or lose the response).
"""

import collections
import gzip
import hashlib
import json
import os

ALPACA_PROMPT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"
TEMPLATES = ("alpaca", "chatml")
ROLES = ("system", "user", "assistant")


class BadRow(ValueError):
  """A row that cannot be trained on; the message is the reason counted."""


def read_rows(path):
  """(rows, skipped) from a JSON array or a JSONL file (either gzipped when it ends in .gz);
  skipped counts unparseable JSONL lines. A file that is neither raises an error naming it."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"data file {path} does not exist")
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8") as f:
    text = f.read()
  if text.lstrip().startswith("["):
    try:
      rows = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON ({e})") from None
    return rows, collections.Counter()
  rows, skipped = [], collections.Counter()
  for line in text.splitlines():
    if not line.strip():
      continue
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      skipped["not JSON"] += 1
  if not rows:
    raise ValueError(f"{path}: no JSON rows (expected a JSON array or one object per line)")
  return rows, skipped


def messages_of(row):
  """A row of either format -> (messages [(role, content)], (instruction, input) for an alpaca
  row else None), checked."""
  if not isinstance(row, dict):
    raise BadRow("not an object")
  if "messages" in row:
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
      raise BadRow("messages is not a non-empty list")
    out = []
    for m in messages:
      if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
        raise BadRow("message without a known role and string content")
      out.append((m["role"], m["content"]))
    if not any(role == "assistant" and content.strip() for role, content in out):
      raise BadRow("empty output")
    return out, None
  for field in ("instruction", "output"):
    if not isinstance(row.get(field), str):
      raise BadRow(f"missing {field}")
  if not isinstance(row.get("input", ""), str):
    raise BadRow("missing input")
  if not row["output"].strip():
    raise BadRow("empty output")
  if not row["instruction"].strip():
    raise BadRow("missing instruction")
  input_ = row.get("input", "").strip()
  user = row["instruction"] + (f"\n\n{input_}" if input_ else "")
  return [("user", user), ("assistant", row["output"])], (row["instruction"], input_)


def check_template(template, tokenizer):
  """A clear error when the tokenizer cannot express the template."""
  if template not in TEMPLATES:
    raise ValueError(f"unknown SFT template {template!r}; expected one of {TEMPLATES}")
  if template == "chatml":
    special = getattr(tokenizer, "special_ids", frozenset())
    for marker in (CHATML_START, CHATML_END):
      ids = tokenizer.encode(marker)
      if len(ids) != 1 or ids[0] not in special:
        raise ValueError(
            f"template chatml needs {marker} as one special token, but this tokenizer encodes it "
            f"as {len(ids)} ordinary token(s) {ids[:8]}: use template 'alpaca' or a tokenizer "
            "with ChatML tokens (an imported chat model's)")


def pieces(messages, template, fields=None, last_turn_only=False):
  """[(text, trained)]: the example as consecutive pieces, `trained` on what the model learns;
  text None stands for EOS. fields: (instruction, input) of an alpaca row. last_turn_only: train
  only the final assistant turn (a preference pair's reply after a multi-turn dialogue)."""
  if template == "alpaca":
    system = [c for r, c in messages if r == "system"]
    turns = [(r, c) for r, c in messages if r != "system"]
    if len(system) > 1 or [r for r, _ in turns] != ["user", "assistant"]:
      raise BadRow("alpaca template takes one user and one assistant turn")
    instruction, input_ = fields or (turns[0][1], "")
    if system:
      instruction = f"{system[0]}\n\n{instruction}"
    prompt = (ALPACA_PROMPT.format(instruction=instruction, input=input_) if input_
              else ALPACA_PROMPT_NO_INPUT.format(instruction=instruction))
    return [(prompt, False), (turns[1][1], True), (None, True)]
  out = []
  for i, (role, content) in enumerate(messages):
    out.append((f"{CHATML_START}{role}\n", False))
    trained = role == "assistant" and (not last_turn_only or i == len(messages) - 1)
    out += [(content, trained), (CHATML_END, trained), ("\n", False)]
  return out


def tokenize(row, tokenizer, template, max_length, last_turn_only=False):
  """One row -> (ids, weights) int32 lists; raises BadRow with the reason to count."""
  messages, fields = messages_of(row)
  ids, weights = [], []
  for text, trained in pieces(messages, template, fields, last_turn_only):
    piece = [tokenizer.eos_id] if text is None else tokenizer.encode(text)
    ids += piece
    weights += [int(trained)] * len(piece)
  if len(ids) > max_length:
    raise BadRow(f"longer than {max_length} tokens")
  return ids, weights


def is_held_out(key, fraction):
  """Deterministic held-out membership by a hash of `key` (a str naming the example): the same
  key is on the same side whatever the file order or size."""
  digest = hashlib.sha256(key.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def prompt_text(messages, template):
  """The text a model is given to answer the last user turn (for eval and chat): the template's
  prompt up to where the assistant's reply starts. messages: [(role, content)]."""
  if template == "alpaca":
    return pieces(list(messages) + [("assistant", "")], template)[0][0]
  text = "".join(f"{CHATML_START}{role}\n{content}{CHATML_END}\n" for role, content in messages)
  return text + f"{CHATML_START}assistant\n"


def model_template(config, tokenizer):
  """The template a model answers in: its fine-tuning run's (`config.finetune.template`), else
  chatml when the tokenizer has ChatML's special tokens (an imported chat model), else None
  (a base model: plain text in, plain text out). config: what training.model_source.load returns."""
  finetune = config.get("finetune") if hasattr(config, "get") else None
  fine_tuned = finetune is not None and bool(finetune.get("train_files"))  # every fine-tuning run has them
  if fine_tuned and finetune.get("template"):  # (a pretraining run's config has the default too)
    return finetune.get("template")
  try:
    check_template("chatml", tokenizer)
  except ValueError:
    return None
  return "chatml"
