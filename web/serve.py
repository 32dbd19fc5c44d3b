r"""Serve the in-browser chat page for an exported model, on this machine only.

  python -m export --model=smollm2-135m-instruct --format=web --out=exports/smollm2
  (cd web && npm ci --ignore-scripts)   # once: onnxruntime-web, served from web/node_modules
  .venv/bin/python web/serve.py --bundle=exports/smollm2/web --port=8000
  # then open http://127.0.0.1:8000/  (?variant=int8, ?device=webgpu|wasm|auto, ?threads=4)

Serves web/ at /, onnxruntime-web's dist/ (its .mjs and .wasm files) at /ort/ and the bundle at
/model/, from 127.0.0.1 only; the page fetches nothing from anywhere else. Cross-origin isolation
headers (COOP/COEP) are sent so that ?threads=N can use WASM threads.
"""

import functools
import http.server
import os
import posixpath
import sys
import urllib.parse

from absl import app, flags

WEB_DIR = os.path.dirname(os.path.abspath(__file__))
ORT_DIR = os.path.join(WEB_DIR, "node_modules", "onnxruntime-web", "dist")
MIME_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
              ".json": "application/json", ".onnx": "application/octet-stream",
              ".html": "text/html", ".css": "text/css", ".png": "image/png"}

_BUNDLE = flags.DEFINE_string("bundle", None,
                              "The web bundle: DIR/web from python -m export --format=web --out=DIR.")
_PORT = flags.DEFINE_integer("port", 8000, "Port on 127.0.0.1; 0 picks a free one (printed).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Log every request.")


def check_dirs(bundle):
  """ValueError saying what to run when the bundle or onnxruntime-web is missing."""
  if not os.path.isfile(os.path.join(bundle, "manifest.json")):
    raise ValueError(f"{bundle} holds no manifest.json: export a model first, e.g. python -m export "
                     f"--model=smollm2-135m-instruct --format=web --out=exports/smollm2, then "
                     f"--bundle=exports/smollm2/web")
  if not os.path.isfile(os.path.join(ORT_DIR, "ort.wasm.min.mjs")):
    raise ValueError(f"onnxruntime-web is not installed ({ORT_DIR} is missing): run "
                     f"cd {os.path.relpath(WEB_DIR)} && npm ci --ignore-scripts")


class Handler(http.server.SimpleHTTPRequestHandler):
  """Maps /ort/ and /model/ to their folders and everything else to web/ (node_modules hidden)."""

  extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

  def __init__(self, *args, bundle, verbose, **kwargs):
    self.bundle, self.verbose = bundle, verbose
    super().__init__(*args, directory=WEB_DIR, **kwargs)

  def translate_path(self, path):
    path = posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(path).path))
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    if parts[:1] == ["ort"]:
      root, parts = ORT_DIR, parts[1:]
    elif parts[:1] == ["model"]:
      root, parts = self.bundle, parts[1:]
    elif parts[:1] == ["node_modules"]:
      return os.path.join(WEB_DIR, "no such file")
    else:
      root = WEB_DIR
    return os.path.join(root, *parts)

  def end_headers(self):
    self.send_header("Cross-Origin-Opener-Policy", "same-origin")
    self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
    self.send_header("Cross-Origin-Resource-Policy", "same-origin")
    self.send_header("Cache-Control", "no-store")
    super().end_headers()

  def log_message(self, format, *args):
    if self.verbose:
      super().log_message(format, *args)

  def log_error(self, format, *args):
    super().log_message(format, *args)


class Server(http.server.ThreadingHTTPServer):
  daemon_threads = True

  def handle_error(self, request, client_address):
    if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
      super().handle_error(request, client_address)  # a closed tab mid-download is not an error


def make_server(bundle, port, verbose=False):
  """A server on 127.0.0.1:port (0: any free port); url = f"http://127.0.0.1:{server.server_port}/"."""
  check_dirs(bundle)
  handler = functools.partial(Handler, bundle=os.path.abspath(bundle), verbose=verbose)
  return Server(("127.0.0.1", port), handler)


def main(argv):
  del argv
  if not _BUNDLE.value:
    sys.exit("error: --bundle is required (DIR/web from python -m export --format=web --out=DIR)")
  try:
    server = make_server(_BUNDLE.value, _PORT.value, _VERBOSE.value)
  except (ValueError, OSError) as e:
    sys.exit(f"error: {e}")
  print(f"serving {_BUNDLE.value} at http://127.0.0.1:{server.server_port}/ (Ctrl-C stops)", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()


if __name__ == "__main__":
  app.run(main)
