"""The per-member optimizer is torch.optim's SGD and Adam, each member with its own
hyperparameters."""

from __future__ import annotations

import pytest
import torch

from sweeps.trial.fused.members import member_specs
from sweeps.trial.fused.optimizer import MemberOptimizer

# (lr, weight_decay, momentum) per member: momentum and weight decay of 0 included, as torch
# special-cases both.
HYPER = [(0.1, 0.0, 0.9), (0.013, 1e-3, 0.0), (1.5, 5e-2, 0.5), (3e-4, 0.0, 0.0)]
SHAPES = [(5, 7), (7,), (3, 2, 3, 3)]


def trajectories(name: str, steps: int = 12):
    """Each member's parameters after every step: from MemberOptimizer on the stacked tensors, and
    from torch.optim on the member's own tensors, both fed the same gradients."""
    torch.manual_seed(0)
    members = member_specs(
        [
            (index, {"lr": lr, "weight_decay": wd, "momentum": mom})
            for index, (lr, wd, mom) in enumerate(HYPER)
        ],
        0,
    )
    fused = [torch.nn.Parameter(torch.randn(len(HYPER), *shape)) for shape in SHAPES]
    solo = [
        [torch.nn.Parameter(param.detach()[m].clone()) for param in fused]
        for m in range(len(HYPER))
    ]
    ours = MemberOptimizer(fused, members, name=name)
    theirs = [
        torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd)
        if name == "sgd"
        else torch.optim.Adam(params, lr=lr, weight_decay=wd)
        for params, (lr, wd, mom) in zip(solo, HYPER, strict=True)
    ]
    for _ in range(steps):
        grads = [torch.randn_like(param) for param in fused]
        for param, grad in zip(fused, grads, strict=True):
            param.grad = grad.clone()
        for m, params in enumerate(solo):
            for param, grad in zip(params, grads, strict=True):
                param.grad = grad[m].clone()
        ours.step()
        for optimizer in theirs:
            optimizer.step()
        yield fused, solo


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_each_member_steps_as_torch_optim_steps_it(name):
    for fused, solo in trajectories(name):
        for m, params in enumerate(solo):
            for stacked, own in zip(fused, params, strict=True):
                # The same formulas, the same operations in the same order: equal to the last bit.
                assert torch.equal(stacked.detach()[m], own.detach())


def test_members_that_leave_take_their_state_with_them():
    steps = trajectories("adam")
    fused, solo = next(steps)
    optimizer = MemberOptimizer(
        fused,
        member_specs(
            [
                (index, {"lr": lr, "weight_decay": wd, "momentum": mom})
                for index, (lr, wd, mom) in enumerate(HYPER)
            ],
            0,
        ),
        name="adam",
    )
    for param in fused:
        param.grad = torch.ones_like(param)
    optimizer.step()
    kept = [torch.nn.Parameter(param.detach()[[0, 2]].clone()) for param in fused]
    optimizer.keep([0, 2], kept)
    assert optimizer.hyper["lr"].tolist() == [HYPER[0][0], HYPER[2][0]]
    assert all(state["exp_avg"].shape[0] == 2 for state in optimizer.state)
    for param in kept:
        param.grad = torch.ones_like(param)
    optimizer.step()  # the kept members go on with their own moments
    assert all(torch.isfinite(param).all() for param in kept)


def test_an_unknown_optimizer_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"choose from \['adam', 'sgd'\]"):
        MemberOptimizer(
            [torch.nn.Parameter(torch.zeros(1, 2))], member_specs([(0, {})], 0), name="rmsprop"
        )
