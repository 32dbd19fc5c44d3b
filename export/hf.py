"""Hugging Face LLaMA format: config.json, model.safetensors, tokenizer.json (+ tokenizer_config,
generation_config, and the SentencePiece tokenizer.model when the model has one), loadable by
`transformers.AutoModelForCausalLM` / `AutoTokenizer` and by our own importer.

Our layout and Hugging Face's differ only in shapes (models/llama_import.py): rotary uses the
same rotate-half convention, so q/k need no permutation here (GGUF's do; see export/gguf_file.py).
"""

import json
import os
import shutil

from export import tokenizer_json, weights as weights_lib
from input_pipeline import files, sft


def hf_config(cfg, tokenizer, max_seq_len):
  return {
      "architectures": ["LlamaForCausalLM"], "model_type": "llama",
      "vocab_size": int(cfg.vocab_size), "hidden_size": int(cfg.embed_dim),
      "intermediate_size": int(cfg.mlp_dim), "num_hidden_layers": int(cfg.num_layers),
      "num_attention_heads": int(cfg.num_heads), "num_key_value_heads": int(cfg.num_kv_heads),
      "head_dim": int(cfg.head_dim), "hidden_act": "silu", "rms_norm_eps": float(cfg.norm_eps),
      "rope_theta": float(cfg.rope_theta), "max_position_embeddings": int(max_seq_len),
      "tie_word_embeddings": bool(cfg.tie_embeddings), "attention_bias": False, "mlp_bias": False,
      "bos_token_id": tokenizer.bos_id, "eos_token_id": int(tokenizer.eos_id),
      "pad_token_id": tokenizer.pad_id, "torch_dtype": "float32",
  }


def _token(tok, i):
  return None if i is None or i < 0 else tok.id_to_token(int(i))


def write(config, params, tokenizer, out_dir, max_seq_len=2048):
  """Write the Hugging Face directory `out_dir` (written beside, then renamed into place)."""
  from safetensors.numpy import save_file
  cfg = config.model
  weights_lib.check(cfg, "hf")
  with files.atomic_directory(out_dir) as tmp:
    save_file(weights_lib.torch_tensors(cfg, params), os.path.join(tmp, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
      json.dump(hf_config(cfg, tokenizer, max_seq_len), f, indent=2)
    tok = tokenizer_json.to_tokenizers(tokenizer)
    tok.save(os.path.join(tmp, "tokenizer.json"))
    template = sft.model_template(config, tokenizer)
    tok_config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": int(max_seq_len),
                  "bos_token": _token(tok, tokenizer.bos_id), "eos_token": _token(tok, tokenizer.eos_id),
                  "pad_token": _token(tok, tokenizer.pad_id), "add_bos_token": False,
                  "clean_up_tokenization_spaces": False}
    chat_template = getattr(tokenizer, "chat_template", "")
    if chat_template:
      tok_config["chat_template"] = chat_template
    elif template == "chatml":
      tok_config["chat_template"] = _CHATML
    with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
      json.dump(tok_config, f, indent=2)
    with open(os.path.join(tmp, "generation_config.json"), "w") as f:
      json.dump({"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer_json.stop_ids(tokenizer),
                 "pad_token_id": tokenizer.pad_id}, f, indent=2)
    sp_model = getattr(tokenizer, "path", "")
    if sp_model.endswith(".model") and os.path.isfile(sp_model):
      shutil.copyfile(sp_model, os.path.join(tmp, "tokenizer.model"))
  return out_dir


_CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
           "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
