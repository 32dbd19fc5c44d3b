"""The training objectives, one module each, registered by `config.objective`:

  lm      next-token cross-entropy: pretraining, or SFT on config.finetune's rows   lm.py
  reward  Bradley-Terry reward model on preference pairs                          reward.py
  dpo     Direct Preference Optimization against the frozen init_from model       dpo.py
  ppo     RLHF with PPO on rollouts of the current policy, a reward model's score  ppo.py

Each module builds one `objective.Objective`: its loss (sums over the batch plus the weight it
is normalised by), batch fields and normaliser, its config section and checks, how its batches
are built from `config.finetune` (input_pipeline/finetune.py's shapes: examples, pairs,
prompts), its held-out eval step and metrics, and the lines it prints at the end. train.py,
the train step, the config check and the evaluator read those fields; nothing outside this
package branches on an objective's name. The math objectives share is in formulas.py (Bradley-
Terry, DPO, GAE, clipped PPO losses, KL control) and the forward passes in scoring.py.

Adding an objective (say GRPO) is one new file and one line here:
  1. training/objectives/grpo.py: write `loss(graphdef, params, batch, rng=None, reference=None,
     **settings)` returning dict(objective=, loss=, weight=, ...metrics) as sums over the batch;
     pick a normaliser (objective.token_count or pair_count); if it has knobs, a
     `config_section()` returning their ConfigDict (it becomes config.grpo, with a one-line
     comment per field) and `settings(config)` passing them to the loss; `check(config,
     process_count)` raising through training.config.need; its data: `load_data` (reuse
     finetune.load_examples / load_pairs / load_prompts) and `train_iterator(data, run)` (an
     iterator of local numpy batches with get_state/set_state for checkpoints; rollouts.py is
     the on-policy example); then `OBJECTIVE = Objective(name="grpo", ...)`, leaving every
     hook it does not need at its default.
  2. Here: `grpo=grpo.OBJECTIVE,` in REGISTRY (and add the module to the import line).
  3. tests/test_objectives.py: its loss against a hand-computed value; a configs/grpo.py preset
     with a runlocal variant, run by tests/test_finetune.py.
"""

from training.objectives import dpo, lm, ppo, reward
from training.objectives.objective import Objective, Run

REGISTRY = dict(
    lm=lm.OBJECTIVE,
    reward=reward.OBJECTIVE,
    dpo=dpo.OBJECTIVE,
    ppo=ppo.OBJECTIVE,
)


def get(name):
  """The registered Objective called `name`; a ValueError naming the known ones otherwise."""
  if name not in REGISTRY:
    raise ValueError(f"config.objective = {name!r}: expected one of {sorted(REGISTRY)}.")
  return REGISTRY[name]


__all__ = ["REGISTRY", "Objective", "Run", "get"]
