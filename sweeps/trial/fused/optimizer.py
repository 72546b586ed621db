"""A per-member optimizer for fused parameters: torch.optim's SGD and Adam, each member with its own
hyperparameters.

Every fused parameter has the member dimension first, so a member's learning rate,
weight decay and momentum are (M,) tensors viewed as (M, 1, ...) and broadcast over its
slice. The update formulas are torch.optim.SGD's (momentum, no dampening, no Nesterov)
and torch.optim.Adam's (L2 weight decay, no amsgrad), written out per member;
tests/trial/fused/test_optimizer.py holds them to torch.optim.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sweeps.trial.fused.members import MemberSpec

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as the solo trials use


class MemberOptimizer:
    """Per-member SGD or Adam over a fused model's trainable parameters, every step a few
    torch._foreach calls over all of them (on a small model the per-tensor calls would cost more
    than the math)."""

    def __init__(self, params: list[nn.Parameter], members: list[MemberSpec], *, name: str) -> None:
        if name not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {name!r}; choose from ['adam', 'sgd']")
        self.name = name
        self.params = list(params)
        device = self.params[0].device if self.params else None
        # float64, as torch.optim keeps them (Python floats), cast to the parameter's dtype where
        # used.
        self.hyper = {
            key: torch.tensor(
                [member.params[key] for member in members], dtype=torch.float64, device=device
            )
            for key in ("lr", "weight_decay", "momentum")
        }
        self.state: list[dict[str, Tensor]] = [{} for _ in self.params]
        self.steps = 0
        self._hyper_changed()

    def _hyper_changed(self) -> None:
        # Decided here, not each step: reading a tensor's values would sync with a GPU.
        self.decays = bool((self.hyper["weight_decay"] != 0).any())
        self._views: dict[tuple[str, int, torch.dtype], Tensor] = {}

    def per_member(self, name: str, values: Tensor, param: Tensor) -> Tensor:
        """(M,) `values` (computed in float64, as torch.optim computes with Python floats) shaped to
        broadcast over `param`'s member slices in its dtype; made once per name, rank and dtype."""
        key = (name, param.ndim, param.dtype)
        if key not in self._views:
            self._views[key] = values.to(param.dtype).view(-1, *([1] * (param.ndim - 1)))
        return self._views[key]

    def _each(self, name: str, values: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
        return [self.per_member(name, values, param) for param in params]

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        # A parameter without a gradient was unused this step (no member has that batch norm).
        live = [
            (param, param.grad, state)
            for param, state in zip(self.params, self.state, strict=True)
            if param.grad is not None
        ]
        if not live:
            return
        params: list[Tensor] = [param for param, _, _ in live]
        # ours to change: zero_grad drops them before the next backward
        grads = [grad for _, grad, _ in live]
        states = [state for _, _, state in live]
        if self.decays:  # torch adds no decay term at weight_decay 0
            torch._foreach_addcmul_(
                grads, params, self._each("weight_decay", self.hyper["weight_decay"], params)
            )
        if self.name == "sgd":
            self._sgd(params, grads, states)
        else:
            self._adam(params, grads, states)

    def _sgd(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict[str, Tensor]]
    ) -> None:
        # torch: buf = grad on a parameter's first step, then buf * momentum + grad; a momentum
        # of 0 makes that grad, as torch's momentum-free step.
        going = [position for position, state in enumerate(states) if "momentum_buffer" in state]
        if going:
            buffers = [states[position]["momentum_buffer"] for position in going]
            torch._foreach_mul_(
                buffers,
                self._each(
                    "momentum", self.hyper["momentum"], [params[position] for position in going]
                ),
            )
            torch._foreach_add_(buffers, [grads[position] for position in going])
        for state, grad in zip(states, grads, strict=True):
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.clone()
        torch._foreach_addcmul_(
            params,
            [state["momentum_buffer"] for state in states],
            self._each("-lr", -self.hyper["lr"], params),
        )

    def _adam(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict[str, Tensor]]
    ) -> None:
        beta1, beta2 = ADAM_BETAS
        for state, param in zip(states, params, strict=True):
            if "exp_avg" not in state:
                state["exp_avg"], state["exp_avg_sq"] = (
                    torch.zeros_like(param),
                    torch.zeros_like(param),
                )
        exp_avgs, exp_avg_sqs = (
            [state["exp_avg"] for state in states],
            [state["exp_avg_sq"] for state in states],
        )
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        bias_correction1 = 1 - beta1**self.steps
        bias_correction2_sqrt = (1 - beta2**self.steps) ** 0.5
        denoms = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denoms, bias_correction2_sqrt)
        torch._foreach_add_(denoms, ADAM_EPS)
        # torch: param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1), whose value is one
        # number.
        step_sizes = [
            (-self.hyper["lr"] / bias_correction1)
            .to(param.dtype)
            .view(-1, *([1] * (param.ndim - 1)))
            for param in params
        ]
        torch._foreach_addcdiv_(params, torch._foreach_mul(exp_avgs, step_sizes), denoms)

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": self.steps, "hyper": self.hyper, "state": self.state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        device = self.params[0].device
        self.steps = saved["steps"]
        self.hyper = {key: value.to(device) for key, value in saved["hyper"].items()}
        self.state = [
            {key: value.to(device) for key, value in state.items()} for state in saved["state"]
        ]
        self._hyper_changed()

    def keep(self, positions: list[int], params: list[nn.Parameter]) -> None:
        """Only the members at `positions` stay, now training `params` (the model's, after
        FusedModel.keep)."""
        index = torch.tensor(positions, dtype=torch.long, device=self.hyper["lr"].device)
        self.params = list(params)
        self.hyper = {key: value[index] for key, value in self.hyper.items()}
        self.state = [{key: value[index] for key, value in state.items()} for state in self.state]
        self._hyper_changed()

    def member_state(self, m: int) -> list[dict[str, Tensor]]:
        """A copy of member m's slice of every state tensor (to put back with set_member_state)."""
        return [{key: value[m].clone() for key, value in state.items()} for state in self.state]

    def set_member_state(self, m: int, saved: list[dict[str, Tensor]]) -> None:
        for state, kept in zip(self.state, saved, strict=True):
            for key, value in kept.items():
                if key in state:
                    state[key][m] = value
