"""MGDA-Decoupled and its baselines: the min-norm solver, the five weightings, the combined update."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from moalign.config import TrainSettings
from moalign.data.schema import PairSet
from moalign.methods.mgda import MGDAWeighting, min_norm_weights, min_norm_weights_from_gram
from moalign.train.losses import dpo_pair_loss
from moalign.train.preference_run import build_preference_trainer


def sq_norm(alpha, grads):
    return float((alpha.double() @ grads.double()).pow(2).sum())


def simplex_grid(k: int, n: int):
    """Every point of the simplex with coordinates in multiples of 1/n."""
    for parts in itertools.product(range(n + 1), repeat=k - 1):
        if sum(parts) <= n:
            yield torch.tensor([*parts, n - sum(parts)], dtype=torch.float64) / n


def brute_force_min(grads, n):
    return min(sq_norm(a, grads) for a in simplex_grid(grads.shape[0], n))


# ------------------------------------------------------------------ the solver


def test_two_gradients_closed_form_by_hand():
    # min_g 4 g^2 + (1 - g)^2 -> g = 0.2
    assert min_norm_weights(torch.tensor([[2.0, 0.0], [0.0, 1.0]])).tolist() == pytest.approx([0.2, 0.8])
    assert min_norm_weights(torch.tensor([[1.0, 0.0], [0.0, 1.0]])).tolist() == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize("seed", range(5))
def test_two_gradients_match_a_line_search(seed):
    grads = torch.randn(2, 7, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    alpha = min_norm_weights(grads)
    gammas = torch.linspace(0, 1, 20001, dtype=torch.float64)
    values = ((gammas[:, None] * grads[0] + (1 - gammas[:, None]) * grads[1]) ** 2).sum(1)
    assert float(alpha[0]) == pytest.approx(float(gammas[values.argmin()]), abs=1e-4)
    assert float(alpha.sum()) == pytest.approx(1.0) and (alpha >= 0).all()


def test_parallel_opposite_and_zero_gradients():
    g = torch.tensor([1.0, 2.0, -1.0])
    assert min_norm_weights(torch.stack([g, 3 * g])).tolist() == pytest.approx([1.0, 0.0])  # the shorter one
    alpha = min_norm_weights(torch.stack([g, -g]))
    assert alpha.tolist() == pytest.approx([0.5, 0.5]) and sq_norm(alpha, torch.stack([g, -g])) < 1e-20
    assert min_norm_weights(torch.stack([torch.zeros(3), g])).tolist() == pytest.approx([1.0, 0.0])
    assert min_norm_weights(torch.zeros(3, 4)).tolist() == pytest.approx([1 / 3] * 3)  # every point optimal
    assert min_norm_weights(torch.stack([g, g])).tolist() == pytest.approx([0.5, 0.5])  # identical: symmetric


CASES = {
    "random": lambda k, gen: torch.randn(k, 6, generator=gen, dtype=torch.float64),
    "correlated": lambda k, gen: torch.randn(k, 6, generator=gen, dtype=torch.float64) + 3.0,
    "parallel": lambda k, gen: torch.rand(k, 1, generator=gen, dtype=torch.float64) * torch.ones(k, 6) + 0.5,
    "opposite": lambda k, gen: torch.cat([torch.ones(1, 6), -torch.ones(1, 6), torch.randn(k - 2, 6, generator=gen)]),
    "zero": lambda k, gen: torch.cat([torch.zeros(1, 6), torch.randn(k - 1, 6, generator=gen, dtype=torch.float64)]),
}


@pytest.mark.parametrize("k,n", [(3, 60), (4, 24), (5, 14)])
@pytest.mark.parametrize("case", list(CASES))
def test_frank_wolfe_beats_brute_force_simplex_search(k, n, case):
    grads = CASES[case](k, torch.Generator().manual_seed(k)).double()
    alpha = min_norm_weights(grads)
    assert float(alpha.sum()) == pytest.approx(1.0) and (alpha >= 0).all()
    value = sq_norm(alpha, grads)
    assert value <= brute_force_min(grads, n) + 1e-12
    # optimality (KKT) on the simplex: no vertex has a smaller directional derivative than alpha itself
    gram = grads @ grads.T
    assert float((gram @ alpha).min()) >= value - 1e-9 * float(gram.diagonal().max())


def test_solver_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(K, D\)"):
        min_norm_weights(torch.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        min_norm_weights_from_gram(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]))


# ------------------------------------------------------------------ the five modes


def test_decoupled_vanilla_and_normalised_differ_on_a_hand_made_case():
    grads = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # g_1 large, g_2 small
    losses = torch.tensor([2.0, 0.5], dtype=torch.float64)  # objective 1 far from converged
    gram = grads @ grads.T
    expected = {  # (alpha, update direction sum_k c_k g_k)
        "vanilla": ([1 / 17, 16 / 17], [4 / 17, 16 / 17]),  # favours the small gradient
        "decoupled": ([0.5, 0.5], [2.0, 0.5]),  # g/L = (2,0), (0,2): equal; raw gradients applied
        "normalised": ([0.5, 0.5], [0.5, 0.5]),  # unit gradients, applied normalised
    }
    for mode, (alpha, update) in expected.items():
        weighting = MGDAWeighting(mode, 2)
        coef = weighting.coefficients(losses, gram)
        assert weighting.weights.tolist() == pytest.approx(alpha), mode
        assert (coef @ grads).tolist() == pytest.approx(update), mode


def test_uniform_and_groupdro_weights_by_hand():
    assert MGDAWeighting("uniform", 4).coefficients(torch.rand(4)).tolist() == pytest.approx([0.25] * 4)
    dro = MGDAWeighting("groupdro", 2, eta=1.0)
    first = dro.coefficients(torch.tensor([1.0, 0.0]))
    assert first.tolist() == pytest.approx([math.e / (math.e + 1), 1 / (math.e + 1)])
    assert dro.coefficients(torch.tensor([0.0, 1.0])).tolist() == pytest.approx([0.5, 0.5])  # q * e^L accumulates
    restored = MGDAWeighting("groupdro", 2, eta=1.0)
    restored.load_state_dict(dro.state_dict())
    assert restored.coefficients(torch.tensor([0.0, 0.0])).tolist() == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="mode"):
        MGDAWeighting("mgda++", 2)
    with pytest.raises(ValueError, match="Gram"):
        MGDAWeighting("decoupled", 2).coefficients(torch.ones(2))


# ------------------------------------------------------------------ the combined update on a real model


def _pairs(objective, n, offset):
    prompts = [f"\n\nHuman: Tell me about topic {i + offset}?\n\nAssistant:" for i in range(n)]
    return PairSet(prompts, ["Sure, a kind answer."] * n, ["No, go away now."] * n, [objective] * n)


def _rms_norm_in_input_dtype(self, hidden_states):
    """LlamaRMSNorm without its float32 upcast, so that a float64 model is float64 throughout."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


@pytest.mark.parametrize("mode,grad_layers", [("decoupled", 0), ("normalised", 0), ("vanilla", 1)])
def test_combined_update_matches_finite_differences(tmp_path, tiny_lm_dir, monkeypatch, mode, grad_layers):
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    monkeypatch.setattr(LlamaRMSNorm, "forward", _rms_norm_in_input_dtype)
    pairs = {"a": _pairs("a", 4, 0), "b": _pairs("b", 4, 10), "c": _pairs("c", 4, 20)}
    settings = TrainSettings(max_steps=1, per_device_train_batch_size=3, max_length=40)
    trainer = build_preference_trainer(tiny_lm_dir, pairs, loss_fn=dpo_pair_loss(0.5), weighting=MGDAWeighting(mode, 3),
                                       settings=settings, output_dir=tmp_path, seed=0, grad_layers=grad_layers)
    model = trainer.model.double()
    with torch.no_grad():  # leave the reference, so that the three losses and gradients differ
        gen = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    trainer.training_step(model, batch)
    row = trainer.history[-1]
    coef = [row.get(f"coef/{n}", row[f"weight/{n}"]) for n in "abc"]
    assert min(coef) < max(coef)  # a non-trivial combination

    def combined_loss():
        with torch.no_grad():
            return sum(c * trainer.objective_loss(model, b, k)[0] for k, (c, b) in enumerate(zip(coef, batch["objectives"])))

    gen, eps = torch.Generator().manual_seed(1), 1e-6
    for _ in range(2):
        direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in model.parameters()]
        analytic = sum(float((p.grad * d).sum()) for p, d in zip(model.parameters(), direction) if p.grad is not None)
        with torch.no_grad():
            for p, d in zip(model.parameters(), direction):
                p.add_(eps * d)
            plus = combined_loss()
            for p, d in zip(model.parameters(), direction):
                p.sub_(2 * eps * d)
            minus = combined_loss()
            for p, d in zip(model.parameters(), direction):
                p.add_(eps * d)
        assert analytic == pytest.approx(float(plus - minus) / (2 * eps), rel=1e-6)


@pytest.mark.parametrize("kw,match", [
    ({"beta": 0.0}, "method.beta"),
    ({"mode": "pcgrad"}, "method.mode='pcgrad'"),
    ({"grad_layers": -1}, "method.grad_layers=-1"),
    ({"mode": "groupdro", "groupdro_eta": 0.0}, "method.groupdro_eta=0.0"),
    ({"loss_eps": 0.0}, "method.loss_eps=0.0"),
    ({"mode": "vanilla", "per_objective_gradients": False}, "method.per_objective_gradients=false"),
])
def test_bad_mgda_settings_fail_at_config_time(kw, match):
    from moalign.config import ConfigError
    from moalign.methods.mgda import MGDAConfig

    with pytest.raises(ConfigError, match=match):
        MGDAConfig(**kw)
    MGDAConfig(mode="uniform", per_objective_gradients=False, groupdro_eta=0.0)  # eta only matters for groupdro
