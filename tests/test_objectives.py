"""Alignment objectives against values computed by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from training import objectives


def log1pexp(x):
  return math.log1p(math.exp(x))


def test_bradley_terry():
  loss, correct = objectives.bradley_terry(jnp.array([2.0, 0.0]), jnp.array([0.0, 1.0]))
  np.testing.assert_allclose(loss, [log1pexp(-2.0), log1pexp(1.0)], rtol=1e-6)  # 0.126928, 1.313262
  np.testing.assert_array_equal(correct, [1.0, 0.0])


def test_dpo():
  loss, chosen, rejected = objectives.dpo(jnp.array([-10.0]), jnp.array([-12.0]), jnp.array([-11.0]),
                                          jnp.array([-11.0]), beta=0.1)
  np.testing.assert_allclose(chosen, [0.1], rtol=1e-6)
  np.testing.assert_allclose(rejected, [-0.1], rtol=1e-6)
  np.testing.assert_allclose(loss, [log1pexp(-0.2)], rtol=1e-6)  # 0.598139
  # Equal log-ratios: loss log 2, whatever beta.
  loss, _, _ = objectives.dpo(jnp.array([-3.0]), jnp.array([-5.0]), jnp.array([-3.0]), jnp.array([-5.0]), 0.5)
  np.testing.assert_allclose(loss, [math.log(2.0)], rtol=1e-6)


def test_gae_hand_computed():
  # gamma 0.9, lambda 0.8: deltas 0 + .9*.6 - .5 = .04, .9*.7 - .6 = .03, 1 - .7 = .3
  # A2 = .3, A1 = .03 + .72 * .3 = .246, A0 = .04 + .72 * .246 = .21712
  advantages, returns = objectives.gae(jnp.array([[0.0, 0.0, 1.0]]), jnp.array([[0.5, 0.6, 0.7]]),
                                       jnp.ones((1, 3)), gamma=0.9, lam=0.8)
  np.testing.assert_allclose(advantages, [[0.21712, 0.246, 0.3]], rtol=1e-5)
  np.testing.assert_allclose(returns, [[0.71712, 0.846, 1.0]], rtol=1e-5)
  # A shorter response (mask [1, 1, 0]): the padded value (9) never leaks in.
  advantages, _ = objectives.gae(jnp.array([[0.0, 1.0, 0.0]]), jnp.array([[0.5, 0.6, 9.0]]),
                                 jnp.array([[1.0, 1.0, 0.0]]), gamma=0.9, lam=0.8)
  np.testing.assert_allclose(advantages, [[0.04 + 0.72 * 0.4, 0.4, 0.0]], rtol=1e-5)


def test_ppo_policy_clipping():
  # ratios 1.5, 0.5, 1.1; advantages 1, 1, -1; clip 0.2:
  # max(-1.5, -1.2) = -1.2 (clipped), max(-0.5, -0.8) = -0.5, max(1.1, 1.1) = 1.1
  old = jnp.zeros((1, 3))
  new = jnp.log(jnp.array([[1.5, 0.5, 1.1]]))
  loss, clip_fraction = objectives.ppo_policy_loss(new, old, jnp.array([[1.0, 1.0, -1.0]]), jnp.ones((1, 3)), 0.2)
  np.testing.assert_allclose(loss, (-1.2 - 0.5 + 1.1) / 3, rtol=1e-5)
  np.testing.assert_allclose(clip_fraction, 1 / 3, rtol=1e-6)
  # The clipped token passes no gradient; the others do.
  grad = jax.grad(lambda lp: objectives.ppo_policy_loss(lp, old, jnp.array([[1.0, 1.0, -1.0]]),
                                                        jnp.ones((1, 3)), 0.2)[0])(new)
  assert grad[0, 0] == 0 and grad[0, 1] != 0 and grad[0, 2] != 0


def test_ppo_value_clipping():
  # t0: (1-1)^2 = 0 vs (0.7-1)^2 = .09 -> .09; t1: (0-1)^2 = 1 vs (0.3-1)^2 = .49 -> 1
  loss = objectives.ppo_value_loss(jnp.array([[1.0, 0.0]]), jnp.array([[0.5, 0.5]]),
                                   jnp.array([[1.0, 1.0]]), jnp.ones((1, 2)), 0.2)
  np.testing.assert_allclose(loss, 0.5 * (0.09 + 1.0) / 2, rtol=1e-5)


def test_kl_penalty_and_score_at_the_last_token():
  rewards, kl = objectives.kl_penalised_rewards(
      jnp.array([2.0]), jnp.array([[-1.0, -2.0, -3.0]]), jnp.array([[-1.5, -2.0, -2.0]]),
      jnp.array([[1.0, 1.0, 0.0]]), kl_coef=0.1)
  np.testing.assert_allclose(kl, [[0.5, 0.0, 0.0]], atol=1e-7)
  np.testing.assert_allclose(rewards, [[-0.05, 2.0, 0.0]], atol=1e-7)
  # A response after a prompt (mask 0 first): the score still lands on its last token.
  rewards, _ = objectives.kl_penalised_rewards(
      jnp.array([2.0]), jnp.zeros((1, 5)), jnp.zeros((1, 5)), jnp.array([[0.0, 0.0, 1.0, 1.0, 0.0]]), kl_coef=0.1)
  np.testing.assert_allclose(rewards, [[0.0, 0.0, 0.0, 2.0, 0.0]], atol=1e-7)


def test_adaptive_kl_controller():
  assert objectives.adaptive_kl_coef(0.2, 12.0, 6.0, 10000, 256) == pytest.approx(0.2 * (1 + 0.2 * 256 / 10000))
  assert objectives.adaptive_kl_coef(0.2, 5.7, 6.0, 10000, 256) == pytest.approx(0.2 * (1 - 0.05 * 256 / 10000))


def test_token_logprobs_and_whiten():
  logits = jax.random.normal(jax.random.key(0), (2, 3, 7))
  targets = jnp.array([[1, 2, 3], [4, 5, 6]])
  expected = jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(objectives.token_logprobs(logits, targets), expected, rtol=1e-5)
  mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
  white = objectives.whiten(jnp.array([[1.0, 2.0, 50.0], [3.0, 4.0, 5.0]]), mask)
  kept = white[mask > 0]
  np.testing.assert_allclose([kept.mean(), kept.std()], [0.0, 1.0], atol=1e-5)
  assert white[0, 2] == 0
