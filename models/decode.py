"""Text generation on the training weights: greedy, temperature, top-k, top-p, stop strings, streaming.

`Sampler` is the text-in, text-out face of models/engine.Engine (the one decoding loop): a few
prompts at a time, each decoded in its own row of the KV cache. Stop strings are checked on the
host on the decoded text, so they may span tokens (the ReAct agent stops at "\\nObservation").
Sampling: prompt p draws from the rng chain engine.episode_keys(seed)[p], split once per token;
a single prompt's chain is jax.random.key(seed) itself.
"""

from models import engine as engine_lib
from models.engine import sample_logits  # noqa: F401  (re-exported: the one token-selection rule)


class Sampler:
  """Generates text from a model (graphdef + params) and a tokenizer; compiled once per length bucket."""

  def __init__(self, graphdef, params, tokenizer):
    self.graphdef, self.params, self.tokenizer = graphdef, params, tokenizer
    self._engines = {}  # (rows, max length) -> Engine

  def _engine(self, prompts, max_new_tokens):
    encoded = [self.tokenizer.encode(p) for p in prompts]
    if any(not ids for ids in encoded):
      raise ValueError("generate: every prompt must encode to at least one token")
    # Room for the longest prompt and every new token (never "context full"), in steps of 256.
    max_length = engine_lib.bucket(max(map(len, encoded)) + max_new_tokens + 2, (256,))
    key = (len(prompts), max_length)
    if key not in self._engines:
      self._engines[key] = engine_lib.Engine(self.graphdef, self.params, self.tokenizer,
                                             batch_size=len(prompts), max_length=max_length)
    return self._engines[key]

  def generate(self, prompts, max_new_tokens=64, temperature=0.0, top_k=0, top_p=1.0, stop=(), seed=0):
    """prompts: list of str. Returns the completions (without the stop string that ended them)."""
    return self._engine(prompts, max_new_tokens).generate(
        prompts, stop, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)

  def stream(self, prompt, max_new_tokens=64, temperature=0.0, top_k=0, top_p=1.0, stop=(), seed=0):
    """Yields the completion of one prompt in pieces as its tokens are sampled; the pieces join to
    generate([prompt], ...)[0]. Text is held back while it ends in an unfinished UTF-8 character
    (decoded as U+FFFD) or in what may be the start of a stop string, so no piece is ever taken
    back. Assumes decoding is prefix-stable apart from such an unfinished last character."""
    generated, text, shown = [], "", 0
    for token in self._tokens(prompt, max_new_tokens, temperature, top_k, top_p, seed):
      if token == self.tokenizer.eos_id:
        break
      generated.append(token)
      text, stopped = _cut_at_stop(self.tokenizer.decode(generated), stop)
      if stopped:
        break
      settled = text.rstrip("\ufffd")
      safe = len(settled) - _stop_prefix_length(settled, stop)
      if safe > shown:
        yield text[shown:safe]
        shown = safe
    if len(text) > shown:  # the end: whatever was held back is final now
      yield text[shown:]


  def _tokens(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
    """The token ids one prompt draws (EOS included), one at a time."""
    engine = self._engine([prompt], max_new_tokens)
    episode = engine_lib.OneTurn(engine_lib.Turn(prompt, (), max_new_tokens))
    for _, token in engine.tokens("", [episode], temperature=temperature, top_k=top_k, top_p=top_p,
                                  seed=seed):
      yield token


def _cut_at_stop(text, stop):
  """(text before the first stop string, whether there was one)."""
  hits = [text.find(s) for s in stop if s in text]
  return (text[:min(hits)], True) if hits else (text, False)


def _stop_prefix_length(text, stop):
  """Length of the longest end of `text` that is the start of a stop string (0 when none)."""
  return max((k for s in stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
