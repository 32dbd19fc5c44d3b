"""The decoder's fields, their defaults and what each means: the schema every model config follows.

Family configs (configs/llama.py, palm.py) override what differs; imported models
(models/llama_import.py) fill the same fields from a checkpoint's metadata.
"""

import ml_collections

LORA_TARGETS = ("wq", "wk", "wv", "wo", "gate", "up", "down")  # the weights an adapter can sit beside

# Model fields a fine-tuning config sets itself; every other model field comes from init_from.
RUN_MODEL_FIELDS = ("lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "score_head", "dtype",
                    "remat", "z_loss")


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
  m.attention = "einsum"  # "einsum" (ours; 2-7% faster on CPU, reports/README.md) or "dot_product" (jax.nn)
  m.init_std = 0.02  # normal init std of the embeddings; projections use fan-in scaling
  m.lora_rank = 0  # LoRA adapters of this rank beside lora_targets (0: none; full fine-tuning)
  m.lora_alpha = 16.0  # adapter output scaled by lora_alpha / lora_rank
  m.lora_dropout = 0.0  # dropout on the adapters' input while training
  m.lora_targets = ("wq", "wk", "wv", "wo")  # weights with adapters (wq wk wv wo gate up down); with
  #   lora_rank > 0, () trains only the score head on the frozen model (a linear probe)
  m.score_head = False  # a scalar head on the final hidden state (reward model, PPO value)
  m.update(overrides)
  return m


def finetune_model_config(source_model, run_model):
  """The source model's architecture with the run's adapters, heads and compute settings."""
  merged = source_model.copy_and_resolve_references()
  for field in RUN_MODEL_FIELDS:
    merged[field] = run_model[field]
  return merged
