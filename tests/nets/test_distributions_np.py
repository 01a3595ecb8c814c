"""The numpy acting path samples from the same distributions as the torch training path."""

import numpy as np
import torch

from rlworks.nets import distributions as D
from rlworks.nets.mlp import StackedMLP


def test_categorical_np_logprob_matches_torch_and_frequencies_match_probabilities():
    rng = np.random.default_rng(0)
    logits = np.array([[0.0, 1.0, -1.0], [2.0, 2.0, 2.0]], dtype=np.float32)
    actions, logp = D.categorical_sample_np(np.repeat(logits, 20_000, axis=0), rng)
    ref, _ = D.categorical_logprob_entropy(torch.from_numpy(np.repeat(logits, 20_000, axis=0)),
                                           torch.from_numpy(actions))
    np.testing.assert_allclose(logp, ref.numpy(), rtol=1e-5, atol=1e-6)
    probs = np.exp(logits[0]) / np.exp(logits[0]).sum()  # by hand: softmax
    freq = np.bincount(actions[:20_000], minlength=3) / 20_000
    np.testing.assert_allclose(freq, probs, atol=0.015)  # ~5 standard errors
    freq_uniform = np.bincount(actions[20_000:], minlength=3) / 20_000
    np.testing.assert_allclose(freq_uniform, [1 / 3] * 3, atol=0.015)


def test_categorical_np_never_draws_a_masked_action():
    rng = np.random.default_rng(1)
    low = np.finfo(np.float32).min
    logits = np.tile(np.array([[low, 0.0, low, 0.0, low]], dtype=np.float32), (5_000, 1))
    actions, logp = D.categorical_sample_np(logits, rng)
    assert set(np.unique(actions)) == {1, 3}
    np.testing.assert_allclose(logp, np.log(0.5), rtol=1e-6)


def test_gaussian_np_logprob_matches_torch():
    rng = np.random.default_rng(2)
    mean = rng.standard_normal((1000, 2)).astype(np.float32)
    log_std = np.array([-0.5, 0.3], dtype=np.float32)
    actions, logp = D.gaussian_sample_np(mean, log_std, rng)
    ref, _ = D.gaussian_logprob_entropy(torch.from_numpy(mean), torch.from_numpy(log_std),
                                        torch.from_numpy(actions))
    np.testing.assert_allclose(logp, ref.numpy(), rtol=1e-5, atol=1e-5)
    z = (actions - mean) / np.exp(log_std)
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1.0) < 0.05


def test_stacked_mlp_numpy_forward_equals_torch_and_follows_weight_updates():
    net = StackedMLP(4, (16, 16), (2, 1), (0.01, 1.0), "tanh",
                     generator=torch.Generator().manual_seed(0))
    x = np.random.default_rng(3).standard_normal((7, 4)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net.numpy_forward(x), net(torch.from_numpy(x)).numpy(),
                                   rtol=1e-5, atol=1e-6)
        net.weights[0].add_(0.5)  # an in-place update, as the optimiser does
        np.testing.assert_allclose(net.numpy_forward(x), net(torch.from_numpy(x)).numpy(),
                                   rtol=1e-5, atol=1e-6)
