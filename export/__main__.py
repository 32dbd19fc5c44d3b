r"""Export a model to Hugging Face, GGUF, ONNX, or the browser page's bundle.

  python -m export --model=runs/tiny --format=hf,gguf-q8_0,onnx --out=exports/tiny
  python -m export --model=smollm2-135m-instruct --format=web --out=exports/smollm2
  python web/serve.py --bundle=exports/smollm2/web     # then open http://127.0.0.1:8000

--model is anything training.model_source.load reads: a workdir (LoRA adapters merged into the base),
a Hugging Face directory, a .gguf file or a packaged model name. Formats and where they go:
  hf                   OUT/hf/ (config.json, model.safetensors, tokenizer.json, ...)
  gguf-f16|q8_0|q4_0   OUT/model-<type>.gguf
  onnx | onnx-int8     OUT/model-f32.onnx | OUT/model-int8.onnx, and OUT/tokenizer.json
  web                  OUT/web/ (manifest.json, ONNX variants, tokenizer.json, docs.json)
Every file is written under a temporary name and renamed when complete.
"""

import sys

from absl import app, flags

from export import exporter

_MODEL = flags.DEFINE_string("model", None, "Workdir, Hugging Face dir, .gguf file or packaged model name.")
_FORMAT = flags.DEFINE_list("format", None, "Comma-separated, from the list above.")
_OUT = flags.DEFINE_string("out", None, "Output directory (created).")
_NAME = flags.DEFINE_string("name", "", "Model name written into the files; default: the model's basename.")
_MAX_SEQ_LEN = flags.DEFINE_integer("max_seq_len", 0,
                                    "Context length recorded; 0: the run's seq_len, 2048 for imports.")
_WEB_VARIANTS = flags.DEFINE_list("web_variants", ["int8", "f32"],
                                  "ONNX variants in the web bundle; the first is the default.")
_DOCS = flags.DEFINE_string("docs", "distractor:0-99",
                            "Documents for the page's search/lookup: wiki, distractor:N or distractor:A-B (HotpotQA "
                            "dev questions' paragraphs; 0-99: 991 pages, 1.3 MB); empty: none.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Data dir for --docs; empty: $FRUGAL_DATA_DIR, else ../shared/data.")
flags.mark_flags_as_required(["model", "format", "out"])


def main(argv):
  del argv
  try:
    exporter.export(_MODEL.value, _FORMAT.value, _OUT.value, name=_NAME.value,
                    max_seq_len=_MAX_SEQ_LEN.value, web_variants=_WEB_VARIANTS.value,
                    docs=_DOCS.value, data_dir=_DATA_DIR.value)
  except (ValueError, FileNotFoundError, KeyError) as e:
    print(f"export: error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
