"""The batched multi-turn engine and the eval LM on a tiny random model: the same greedy tokens as
one-at-a-time decoding, whatever the batch size, refills and rollbacks at stop strings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.config import model_config
from eval.api import Turn
from eval.lm import LM
from models import decode, engine as engine_lib, transformer


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
  cfg = model_config(vocab_size=400, num_layers=2, embed_dim=32, num_heads=4,
                            num_kv_heads=2, head_dim=8, mlp_dim=64, init_std=0.5)
  graphdef, params = transformer.split_model(transformer.Decoder(cfg, nnx.Rngs(3)))
  return graphdef, params, tiny_tokenizer


class Scripted:
  """Appends fixed texts turn after turn and records each completion."""

  def __init__(self, texts, stop=("ng",), max_new_tokens=6):
    self.script = list(texts)
    self.texts, self.stop, self.max_new_tokens = list(texts), stop, max_new_tokens
    self.completions, self.aborted = [], None

  def start(self):
    return Turn(self.texts.pop(0), self.stop, self.max_new_tokens)

  def step(self, completion):
    self.completions.append(completion)
    return Turn(self.texts.pop(0), self.stop, self.max_new_tokens) if self.texts else None

  def abort(self, reason):
    self.aborted = reason


def _episodes():
  words = ["the king", " sea", "night ", "queen of war", " fair", "crown", "ship light love"]
  return [Scripted([words[i % 7], f" peace {i}", words[(i * 3) % 7]]) for i in range(7)]


def _reference(graphdef, params, tok, prefix, episode):
  """One episode by full forward passes (no cache), mirroring the engine's text handling."""
  # right-padded to one length (one compile); causal attention ignores the padding
  logits_at = jax.jit(lambda ids, n: nnx.merge(graphdef, params)(ids)[0][0, n - 1])
  forward = lambda ids: logits_at(jnp.pad(ids, ((0, 0), (0, 160 - ids.shape[1]))), ids.shape[1])
  ids = tok.encode(prefix) if prefix else []
  completions, carry, texts = [], "", list(episode.script)
  while texts:
    ids += tok.encode(carry + texts.pop(0))
    generated = []
    while True:
      t = int(jnp.argmax(forward(jnp.asarray([ids + generated]))))
      if t == tok.eos_id:
        break
      generated.append(t)
      text = tok.decode(generated)
      if any(s in text for s in episode.stop) or len(generated) >= episode.max_new_tokens:
        break
    text = tok.decode(generated)
    cut = min((text.find(s) for s in episode.stop if s in text), default=-1)
    text = text[:cut] if cut >= 0 else text
    k = len(generated)
    while k and not text.startswith(tok.decode(generated[:k])):
      k -= 1
    ids += generated[:k]
    carry = text[len(tok.decode(generated[:k])):]
    completions.append(text)
  return completions


@pytest.mark.parametrize("batch_size, decode_span", [(1, 1024), (3, 1024), (3, 8)])
def test_engine_matches_uncached_greedy_decoding(model, batch_size, decode_span):
  """decode_span 8: decode steps read growing spans of the cache (8, 16, ...), not all of it."""
  graphdef, params, tok = model
  prefix = "doc 1 line 2: the sea"
  engine = engine_lib.Engine(graphdef, params, tok, batch_size=batch_size, max_length=128,
                             feed_buckets=(4, 16), decode_span=decode_span)
  episodes = _episodes()
  engine.run(prefix, episodes)
  for episode in episodes:
    assert episode.aborted is None
    assert episode.completions == _reference(graphdef, params, tok, prefix, episode)


def test_engine_batches_agree_and_refill(model):
  graphdef, params, tok = model
  results = []
  for batch_size in (1, 2, 5):
    episodes = _episodes()
    stats = engine_lib.Engine(graphdef, params, tok, batch_size=batch_size, max_length=96,
                              feed_buckets=(8, 32)).run("the king", episodes)
    results.append([e.completions for e in episodes])
    assert stats["generated_tokens"] > 0
  assert results[0] == results[1] == results[2]


def test_single_turn_engine_equals_sampler(model):
  graphdef, params, tok = model
  prompts = ["the king", "doc 3 line 7: sea night", "fair"]
  expected = decode.Sampler(graphdef, params, tok).generate(prompts, max_new_tokens=8)
  lm = LM(graphdef, params, tok, "tiny", max_length=64, agent_batch_size=2)
  assert lm.generate(prompts, max_new_tokens=8) == expected


def test_full_context_aborts_the_episode(model):
  graphdef, params, tok = model
  episode = Scripted(["the king " * 20, "more"], stop=(), max_new_tokens=100)
  engine_lib.Engine(graphdef, params, tok, batch_size=2, max_length=48, feed_buckets=(16,)).run("", [episode])
  assert episode.aborted and "context full" in episode.aborted


def test_loglikelihood_matches_a_direct_forward_pass(model):
  graphdef, params, tok = model
  lm = LM(graphdef, params, tok, "tiny", max_length=64, tokens_per_batch=256)
  pairs = [("the king", " of the sea"), ("doc 1 line 2:", " fair"), ("the queen", " ship")]
  got = lm.loglikelihood(pairs)
  for (context, continuation), (logprob, greedy) in zip(pairs, got):
    whole = tok.encode(context + continuation)
    n = len(whole) - len(tok.encode(context))
    logits = nnx.merge(graphdef, params)(jnp.asarray([whole[:-1]]))[0][0]
    logprobs = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    scored = range(len(whole) - 1 - n, len(whole) - 1)
    assert logprob == pytest.approx(sum(logprobs[i, whole[i + 1]] for i in scored), abs=1e-4)
    assert greedy == all(logprobs[i].argmax() == whole[i + 1] for i in scored)
  # lm-eval moves the context's trailing space onto the continuation
  assert lm.loglikelihood([("the king ", "of the sea")]) == [got[0]]
  # rolling: the whole text from the end-of-text token
  text = "the king of the sea"
  ids = [tok.eos_id] + tok.encode(text)
  logits = nnx.merge(graphdef, params)(jnp.asarray([ids[:-1]]))[0][0]
  expected = float(jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.asarray(ids[1:])[:, None], 1)))
  assert lm.loglikelihood_rolling([text])[0] == pytest.approx(expected, abs=1e-4)


def test_loglikelihood_is_the_same_on_a_sharded_mesh(model):
  graphdef, params, tok = model
  pairs = [("the king", " of the sea"), ("fair", " night"), ("sea", " x"), ("ship", " y")] * 3
  one = LM(graphdef, params, tok, "tiny", max_length=64,
           mesh=jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1, 1), ("data", "fsdp", "tensor")))
  eight = LM(graphdef, params, tok, "tiny", max_length=64)
  assert len(eight.mesh.devices.flat) == 8
  np.testing.assert_allclose([s for s, _ in one.loglikelihood(pairs)],
                             [s for s, _ in eight.loglikelihood(pairs)], atol=1e-4)


def test_sampled_rows_do_not_depend_on_their_neighbours(model):
  """Episode e draws from its own rng chain: the same text at any batch size, with refills."""
  graphdef, params, tok = model
  prompts = ["the king", "sea", "night fair", "crown", "ship"]
  sampling = dict(temperature=1.0, top_k=50, top_p=0.95, seed=7)
  outs = [engine_lib.Engine(graphdef, params, tok, batch_size=b, max_length=64).generate(
      prompts, max_new_tokens=10, **sampling) for b in (1, 2, 5)]
  assert outs[0] == outs[1] == outs[2]
  other_seed = engine_lib.Engine(graphdef, params, tok, batch_size=5, max_length=64).generate(
      prompts, max_new_tokens=10, **dict(sampling, seed=8))
  assert other_seed != outs[0]


def test_one_prompt_draws_the_chain_of_its_seed(model):
  """A single prompt samples token t with the t-th split of jax.random.key(seed), from the
  logits of a full forward pass: the draws of the per-prompt sampler frugal always had."""
  graphdef, params, tok = model
  full = jax.jit(lambda ids: nnx.merge(graphdef, params)(ids)[0])
  ids = tok.encode("the king")
  n = len(ids)
  rng = jax.random.key(3)
  for _ in range(12):
    rng, step_rng = jax.random.split(rng)
    padded = np.zeros((1, 64), np.int32)
    padded[0, :len(ids)] = ids
    t = int(engine_lib.sample_logits(full(padded)[:, len(ids) - 1], step_rng, 1.0, 0, 1.0)[0])
    if t == tok.eos_id:
      break
    ids.append(t)
  got = decode.Sampler(graphdef, params, tok).generate(["the king"], 12, temperature=1.0, seed=3)[0]
  assert got == tok.decode(ids[n:])


def test_rollout_sampling_masks_up_to_the_first_eos(model):
  from training.objectives import rollouts
  graphdef, params, tok = model
  prompts = [tok.encode("the king"), tok.encode("sea night"), tok.encode("fair")]
  settings = dict(max_new_tokens=12, temperature=1.0, top_k=0, top_p=1.0, eos_id=tok.eos_id)
  responses, masks = rollouts.sample(graphdef, params, prompts, jax.random.key(1), **settings)
  assert responses.shape == masks.shape == (3, 12)
  for response, mask in zip(responses, masks):
    n = int(mask.sum())
    assert list(mask) == [1] * n + [0] * (12 - n) and not response[n:].any()
    assert tok.eos_id not in response[:n - 1]
  again, _ = rollouts.sample(graphdef, params, prompts[:1], jax.random.key(1), **settings)
  np.testing.assert_array_equal(again[0], responses[0])  # row 0 alone draws the same
