"""The chapter's orthogonality penalties and Lagrange constraint, pinned against independent
computations (numpy, hand-worked 2 x 2 cases, a closed-form constrained optimum)."""

import math

import numpy as np
import pytest
import torch

from jointspace.errors import InputError
from jointspace.objectives.orthogonality import (LagrangeMultiplier, abs_dot_penalty, dot_constraint,
                                                 frobenius_cross_penalty, weight_cross_penalty)


pytestmark = pytest.mark.usefixtures("one_thread")

Z1 = [[1.0, 2.0], [3.0, -1.0]]
Z2 = [[0.5, -1.0], [2.0, 1.0]]


def _t(x):
    return torch.tensor(x, dtype=torch.float64)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- hand-worked 2 x 2 ---------------------------------------------------------------------------
def test_abs_dot_hand_worked_2x2():
    # row 0: 1*0.5 + 2*(-1) = -1.5 ; row 1: 3*2 + (-1)*1 = 5 ; mean |.| = 3.25
    assert float(abs_dot_penalty(_t(Z1), _t(Z2))) == pytest.approx(3.25)
    assert float(abs_dot_penalty(_t(Z1), _t(Z2), lam=0.2)) == pytest.approx(0.65)


def test_frobenius_hand_worked_2x2():
    # Z1^T Z2 = [[1*0.5+3*2, 1*(-1)+3*1], [2*0.5+(-1)*2, 2*(-1)+(-1)*1]] = [[6.5, 2], [-1, -3]]
    want = 6.5 ** 2 + 2 ** 2 + 1 + 9
    assert float(frobenius_cross_penalty(_t(Z1), _t(Z2))) == pytest.approx(want)
    assert float(frobenius_cross_penalty(_t(Z1), _t(Z2), lam=0.5, normalize=True)) == pytest.approx(0.5 * want / 4)


def test_weight_cross_hand_worked_2x2():
    # W1^T W2 = [[1*0.5+3*2, ...]] as above: the columns of W1 against the columns of W2
    assert float(weight_cross_penalty(_t(Z1), _t(Z2), lam=2.0)) == pytest.approx(2 * (6.5 ** 2 + 4 + 1 + 9))


# -- numpy on the same numbers ---------------------------------------------------------------------
def test_penalties_match_numpy():
    z1, z2, z3 = _rand(7, 4, seed=1), _rand(7, 4, seed=2), _rand(7, 3, seed=3)
    a, b, c = z1.numpy(), z2.numpy(), z3.numpy()
    assert float(abs_dot_penalty(z1, z2, 0.3)) == pytest.approx(0.3 * np.mean(np.abs(np.sum(a * b, 1))), rel=1e-12)
    # d1 != d2; numpy: explicit sum over features and samples
    want = sum(sum(a[i, p] * c[i, q] for i in range(7)) ** 2 for p in range(4) for q in range(3))
    assert float(frobenius_cross_penalty(z1, z3, 0.7)) == pytest.approx(0.7 * want, rel=1e-12)
    assert float(frobenius_cross_penalty(z1, z3, 0.7, normalize=True)) == pytest.approx(0.7 * want / 49, rel=1e-12)
    w1, w2 = _rand(5, 3, seed=4), _rand(5, 6, seed=5)
    want_w = np.linalg.norm(w1.numpy().T @ w2.numpy(), "fro") ** 2
    assert float(weight_cross_penalty(w1, w2, 1.5)) == pytest.approx(1.5 * want_w, rel=1e-12)


def test_penalties_are_zero_when_orthogonal():
    z1 = _t([[1.0, 0.0], [0.0, 2.0]])
    z2 = _t([[0.0, 3.0], [-1.0, 0.0]])
    assert float(abs_dot_penalty(z1, z2)) == 0.0
    # columns orthogonal over the batch: Z1 features live in the first 2 samples, Z2 in the last 2
    zb1 = _t([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0], [0.0, 0.0]])
    zb2 = _t([[0.0], [0.0], [5.0], [6.0]])
    assert float(frobenius_cross_penalty(zb1, zb2)) == 0.0


def test_weight_penalty_zero_means_outputs_orthogonal_for_every_input():
    # two Linear heads writing into orthogonal subspaces of a 4-d joint space
    h1, h2 = torch.nn.Linear(3, 4, bias=False).double(), torch.nn.Linear(5, 4, bias=False).double()
    with torch.no_grad():
        h1.weight[2:] = 0
        h2.weight[:2] = 0
    assert float(weight_cross_penalty(h1.weight, h2.weight).detach()) == 0.0
    z1, z2 = h1(_rand(10, 3, seed=6)), h2(_rand(10, 5, seed=7))
    assert float((z1 @ z2.T).abs().max().detach()) == 0.0


def test_lam_zero_gives_zero():
    assert float(frobenius_cross_penalty(_t(Z1), _t(Z2), lam=0)) == 0.0


# -- gradients ---------------------------------------------------------------------------------------
def test_gradcheck_penalties():
    z1 = _rand(5, 3, seed=8).requires_grad_()
    z2 = _rand(5, 3, seed=9).requires_grad_()
    z3 = _rand(5, 2, seed=10).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: abs_dot_penalty(a, b, 0.7), (z1, z2))
    assert torch.autograd.gradcheck(lambda a, b: frobenius_cross_penalty(a, b, 0.7, normalize=True), (z1, z3))
    w1, w2 = _rand(4, 3, seed=11).requires_grad_(), _rand(4, 2, seed=12).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: weight_cross_penalty(a, b, 0.7), (w1, w2))
    lm = LagrangeMultiplier(init=0.3, augmented=True, rho=2.0).double()
    assert torch.autograd.gradcheck(lambda a, b: lm(dot_constraint(a, b, "square")), (z1, z2))


# -- the Lagrange multiplier ---------------------------------------------------------------------------
@pytest.mark.parametrize("augmented", [False, True])
def test_lagrange_converges_to_the_closed_form_constrained_optimum(augmented):
    # minimise ||x - a||^2 s.t. b'x = 0:  x* = a - (b'a / b'b) b,  mu* = 2 b'a / b'b
    a, b = _t([1.0, 2.0, -0.5]), _t([0.5, 1.0, 2.0])
    x = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    lm = LagrangeMultiplier(init=0.0, ascent_rate=1.0, augmented=augmented).double()
    opt = torch.optim.SGD([x, *lm.parameters()], lr=0.05)  # one ordinary (minimising) optimiser
    for _ in range(600):
        opt.zero_grad()
        (((x - a) ** 2).sum() + lm(b @ x)).backward()
        opt.step()
    x_star = a - (b @ a) / (b @ b) * b
    assert torch.allclose(x.detach(), x_star, atol=1e-8)
    assert isinstance(lm.mu, float)
    assert lm.mu == pytest.approx(2 * float(b @ a) / float(b @ b), abs=1e-8)


def test_lagrange_descends_on_model_and_ascends_on_mu():
    z = torch.nn.Parameter(_t([2.0]))
    lm = LagrangeMultiplier(init=0.5, ascent_rate=3.0).double()
    opt = torch.optim.SGD([z, *lm.parameters()], lr=0.1)
    term = lm(z.sum())  # c = z = 2 > 0
    assert float(term.detach()) == pytest.approx(1.0)
    term.backward()
    opt.step()
    assert float(z.detach()) == pytest.approx(2.0 - 0.1 * 0.5)  # descent on z: grad mu = 0.5
    assert lm.mu == pytest.approx(0.5 + 0.1 * 3.0 * 2.0)  # ascent on mu: + lr * rate * c
    assert "mu=" in repr(lm)


def test_lagrange_augmented_term_value():
    lm = LagrangeMultiplier(init=0.25, augmented=True, rho=4.0)
    assert float(lm(torch.tensor(0.5)).detach()) == pytest.approx(0.25 * 0.5 + 2.0 * 0.25)


def test_dot_constraint_forms():
    z1, z2 = _t(Z1), _t(Z2)  # dots -1.5 and 5
    assert float(dot_constraint(z1, z2)) == pytest.approx(1.75)
    assert float(dot_constraint(z1, z2, "abs")) == pytest.approx(3.25)
    assert float(dot_constraint(z1, z2, "square")) == pytest.approx((2.25 + 25) / 2)
    with pytest.raises(InputError, match="form"):
        dot_constraint(z1, z2, "max")


# -- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [-0.1, math.nan, math.inf, "1", True])
@pytest.mark.parametrize("fn", [abs_dot_penalty, frobenius_cross_penalty, weight_cross_penalty])
def test_bad_lam(fn, lam):
    with pytest.raises(InputError, match="^lam"):
        fn(_t(Z1), _t(Z2), lam=lam)


def test_mismatched_batch_sizes_name_both_shapes():
    for fn in (abs_dot_penalty, frobenius_cross_penalty):
        with pytest.raises(InputError, match=r"z2.*\(4, 3\).*\(5, 3\)"):
            fn(_rand(4, 3), _rand(5, 3))
    with pytest.raises(InputError, match=r"z2.*\(4, 3\).*\(4, 2\)"):
        abs_dot_penalty(_rand(4, 3), _rand(4, 2))


def test_mismatched_weights_name_both_matrices():
    with pytest.raises(InputError, match=r"w1 of shape \(4, 3\) and w2 of shape \(5, 3\)"):
        weight_cross_penalty(_rand(4, 3), _rand(5, 3))


def test_non_2d_inputs():
    with pytest.raises(InputError, match=r"z1: expected a 2-D.*\(3,\)"):
        abs_dot_penalty(_rand(3), _rand(3, 1))
    with pytest.raises(InputError, match=r"z2: expected a 2-D.*\(2, 3, 1\)"):
        frobenius_cross_penalty(_rand(2, 3), _rand(2, 3, 1))
    with pytest.raises(InputError, match=r"w2: expected a 2-D"):
        weight_cross_penalty(_rand(4, 3), _rand(4))
    with pytest.raises(InputError, match="z1"):
        abs_dot_penalty(np.ones((2, 2)), _rand(2, 2))


def test_lagrange_bad_arguments():
    with pytest.raises(InputError, match="ascent_rate"):
        LagrangeMultiplier(ascent_rate=0)
    with pytest.raises(InputError, match="rho"):
        LagrangeMultiplier(augmented=True, rho=-1)
    with pytest.raises(InputError, match="init"):
        LagrangeMultiplier(init=math.nan)
    with pytest.raises(InputError, match=r"constraint: expected a scalar.*\(3,\)"):
        LagrangeMultiplier()(torch.ones(3))
    for flag in ("augmented", "explicit", "nonnegative"):   # the string "no" would read as True
        with pytest.raises(InputError, match=f"^{flag}: expected True or False, got 'no'"):
            LagrangeMultiplier(**{flag: "no", **({"explicit": True} if flag == "nonnegative" else {})})


def test_nonnegative_multiplier_never_uses_a_negative_mu():
    """mu >= 0 from the first step: a negative init, or an optimiser's step that nothing projects
    (without explicit), is refused (mu was used at -1, or drifted below 0)."""
    with pytest.raises(InputError, match=r"^init: expected a multiplier >= 0 with nonnegative=True, got -1"):
        LagrangeMultiplier(init=-1.0, explicit=True, nonnegative=True)
    with pytest.raises(InputError, match="^nonnegative: .*explicit=True"):
        LagrangeMultiplier(nonnegative=True)
    lm = LagrangeMultiplier(init=0.5, ascent_rate=1.0, explicit=True, nonnegative=True)
    assert float(lm(torch.tensor(-2.0))) == -1.0 and lm.mu == 0.0   # 0.5 * -2 used, then max(0, 0.5 - 2)


def test_frobenius_normalize_is_a_flag():
    with pytest.raises(InputError, match="^normalize: expected True or False, got 'no'"):
        frobenius_cross_penalty(_t(Z1), _t(Z2), normalize="no")


def test_inputs_on_two_devices_name_the_second():
    """A tensor on another device than its partner (a "meta" tensor here, where no accelerator is
    at hand) is refused naming it and both devices (torch failed inside, naming neither)."""
    from jointspace.objectives.mutual_info import hsic
    from jointspace.objectives.regularizers import debiased_cross, normalized_frobenius, normalized_weight_cross

    a, other = _rand(6, 3), torch.empty(6, 3, device="meta", dtype=torch.float64)
    for fn in (abs_dot_penalty, frobenius_cross_penalty, dot_constraint, normalized_frobenius, debiased_cross):
        with pytest.raises(InputError, match=r"^z2: expected a tensor on the device of z1 \(cpu\), got meta$"):
            fn(a, other)
    with pytest.raises(InputError, match=r"^y: expected a tensor on the device of x \(cpu\), got meta$"):
        hsic(a, other)
    with pytest.raises(InputError, match=r"^w2: expected a tensor on the device of w1 \(cpu\), got meta$"):
        weight_cross_penalty(a, other)
    with pytest.raises(InputError, match=r"^w_private: expected a tensor on the device of w_shared"):
        normalized_weight_cross(a, other)
