"""A per-member optimizer for fused parameters: torch.optim's SGD and Adam, each member with its own hyperparameters.

Every fused parameter has the member dimension first, so a member's learning rate,
weight decay and momentum are (M,) tensors viewed as (M, 1, ...) and broadcast over its
slice. The update formulas are torch.optim.SGD's (momentum, no dampening, no Nesterov)
and torch.optim.Adam's (L2 weight decay, no amsgrad), written out per member;
tests/trial/fused/test_optimizer.py holds them to torch.optim.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sweeps.trial.fused.members import MemberSpec

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as the solo trials use


class MemberOptimizer:
    """Per-member SGD or Adam over a fused model's trainable parameters."""

    def __init__(self, params: list[nn.Parameter], members: list[MemberSpec], *, name: str) -> None:
        if name not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {name!r}; choose from ['adam', 'sgd']")
        self.name = name
        self.params = list(params)
        device = self.params[0].device if self.params else None
        # float64, as torch.optim keeps them (Python floats), cast to the parameter's dtype where used.
        self.hyper = {key: torch.tensor([member.params[key] for member in members], dtype=torch.float64, device=device) for key in ("lr", "weight_decay", "momentum")}
        self.state: list[dict[str, Tensor]] = [{} for _ in self.params]
        self.steps = 0

    def per_member(self, values: Tensor, param: Tensor) -> Tensor:
        """(M,) values, computed in float64 as torch.optim computes its Python floats, shaped to
        broadcast over `param`'s member slices in its dtype."""
        return values.to(param.dtype).view(-1, *([1] * (param.ndim - 1)))

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        for param, state in zip(self.params, self.state):
            if param.grad is None:
                continue  # unused this step (no member of the group has this batch norm)
            grad = torch.addcmul(param.grad, param, self.per_member(self.hyper["weight_decay"], param))
            if self.name == "sgd":
                self._sgd(param, grad, state)
            else:
                self._adam(param, grad, state)

    def _sgd(self, param: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        # torch: buf = grad on the first step, then buf * momentum + grad; a momentum of 0
        # makes that grad, as torch's momentum-free step.
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = state["momentum_buffer"] = grad.clone()
        else:
            buffer.mul_(self.per_member(self.hyper["momentum"], param)).add_(grad)
        param.addcmul_(buffer, self.per_member(-self.hyper["lr"], param))

    def _adam(self, param: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        beta1, beta2 = ADAM_BETAS
        if "exp_avg" not in state:
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(param), torch.zeros_like(param)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**self.steps
        bias_correction2_sqrt = (1 - beta2**self.steps) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
        # torch: param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1), whose value is one number.
        param.addcdiv_(exp_avg * self.per_member(-self.hyper["lr"] / bias_correction1, param), denom)

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": self.steps, "hyper": self.hyper, "state": self.state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        device = self.params[0].device
        self.steps = saved["steps"]
        self.hyper = {key: value.to(device) for key, value in saved["hyper"].items()}
        self.state = [{key: value.to(device) for key, value in state.items()} for state in saved["state"]]

    def keep(self, positions: list[int], params: list[nn.Parameter]) -> None:
        """Only the members at `positions` stay, now training `params` (the model's, after FusedModel.keep)."""
        index = torch.tensor(positions, dtype=torch.long, device=self.hyper["lr"].device)
        self.params = list(params)
        self.hyper = {key: value[index] for key, value in self.hyper.items()}
        self.state = [{key: value[index] for key, value in state.items()} for state in self.state]

    def member_state(self, m: int) -> list[dict[str, Tensor]]:
        """A copy of member m's slice of every state tensor (to put back with set_member_state)."""
        return [{key: value[m].clone() for key, value in state.items()} for state in self.state]

    def set_member_state(self, m: int, saved: list[dict[str, Tensor]]) -> None:
        for state, kept in zip(self.state, saved):
            for key, value in kept.items():
                if key in state:
                    state[key][m] = value
