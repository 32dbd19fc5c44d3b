r"""Greedy text of llama.cpp itself on our GGUF exports against our JAX model on the same
(dequantised) weights. Needs a llama.cpp build (PyPI ships no binary; reports/export_llamacpp.md
has the cmake lines used here).

  python bench/export_table.py --model=runs/tiny --out=reports/export_tiny     # writes the GGUF files
  python bench/llamacpp_parity.py --llama_bin=/tmp/lcb/bin --exports=smollm2-135m-instruct:reports/export_smollm2/files

Prints, per file and prompt, whether llama.cpp's text (llama-completion --temp 0 -t 1 -n N)
starts with ours and how many tokens agree from the first. Our reference loop does not stop at
EOS; llama.cpp does.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import app, flags  # noqa: E402

_BIN = flags.DEFINE_string("llama_bin", None, "Directory of llama-completion and its libraries.")
_EXPORTS = flags.DEFINE_list("exports", ["smollm2-135m-instruct:reports/export_smollm2/files",
                                         "runs/tiny:reports/export_tiny/files"],
                             "MODEL:DIR pairs (DIR holds model-{f16,q8_0,q4_0}.gguf).")
_PROMPTS = flags.DEFINE_multi_string("prompt", ["The capital of France is", "def fibonacci(n):",
                                                "Once upon a time, in a small village,"], "Prompts.")
_NEW = flags.DEFINE_integer("new_tokens", 24, "Greedy tokens per prompt.")
flags.mark_flags_as_required(["llama_bin"])


def main(argv):
  del argv
  from export import parity, quant
  from training import model_source
  env = dict(os.environ, LD_LIBRARY_PATH=_BIN.value)
  for pair in _EXPORTS.value:
    source, directory = pair.rsplit(":", 1)
    config, _, params, tok = model_source.load(source)
    for weights in quant.GGUF_TYPES:
      reference, same_count = parity.reference_params(config.model, params, weights), 0
      for prompt in _PROMPTS.value:
        ids = tok.encode(prompt)
        ours = parity.jax_greedy(config.model, reference, ids, _NEW.value)[0]
        want = tok.decode(ids + ours)
        got = subprocess.run([os.path.join(_BIN.value, "llama-completion"), "-m",
                              os.path.join(directory, f"model-{weights}.gguf"), "-t", "1", "-n",
                              str(_NEW.value), "--temp", "0", "-no-cnv", "--no-warmup", "-p", prompt],
                             capture_output=True, text=True, env=env, timeout=600, check=True).stdout
        theirs = tok.encode(got)[len(ids):]
        agree = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        same_count += got.startswith(want)
        print(f"  {source} {weights} {prompt!r}: same text {got.startswith(want)}, first "
              f"{agree}/{_NEW.value} tokens agree", flush=True)
        if not got.startswith(want):
          print(f"    llama.cpp {got!r}\n    jax       {want!r}")
      print(f"{source} {weights}: same greedy text for {same_count}/{len(_PROMPTS.value)} prompts", flush=True)


if __name__ == "__main__":
  app.run(main)
