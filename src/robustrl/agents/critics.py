"""A fused ensemble of Q critics (SAC, TD3): every critic's layer is one batched matmul.

``K`` critics ``Q_k([features, action])`` with the same architecture keep their weights stacked,
``[K, in, out]`` per layer, and a forward pass is one ``torch.baddbmm`` per layer for all of them (the first
layer, whose input all critics share, one ``addmm`` against the weights laid side by side): no Python loop
over critics, ``K`` times fewer kernel launches and autograd nodes than ``K`` separate MLPs, and one Polyak
op for all target weights.

The saved policies (:class:`~robustrl.policies.SquashedGaussianActorPolicy`,
:class:`~robustrl.policies.DeterministicActorPolicy`) keep their critics as SB3-named per-critic MLPs
(``critics.i``), so SB3 checkpoints still load into them; a learner trains a :class:`CriticEnsemble` and copies
its weights into the policy's critics with the function :meth:`CriticEnsemble.exporter` returns (one fused
copy) after each round of updates.

Heads (``critic_head``): ``"regression"`` — a scalar Q per critic, squared TD error; ``"hl_gauss"`` —
``num_bins`` logits per critic over a fixed support on ``[v_min, v_max]``, Q their expectation, trained by
cross-entropy against the HL-Gauss target (Farebrother et al., ICML 2024, *Stop Regressing*; the functions of
:mod:`robustrl.agents.dqn`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from robustrl.agents.dqn import hl_gauss_loss
from robustrl.policies.features import Activation

CriticHead = Literal["regression", "hl_gauss"]
"""``regression``: scalar Q, squared error; ``hl_gauss``: HL-Gauss classification over fixed bins."""

_ACT = {"relu": torch.relu, "tanh": torch.tanh}


class CriticEnsemble(nn.Module):
    """``K`` MLP critics ``[features, action] → Q`` evaluated together with batched matmuls.

    Layer ``l`` of critic ``k`` computes ``h @ weights[l][k] + biases[l][k]`` (``weights[l]`` is
    ``[K, in, out]``, ``biases[l]`` ``[K, 1, out]``), with ``activation`` between layers; the last layer has
    ``out_dim`` outputs (1, or the bins of the HL-Gauss head).

    Args:
        in_dim: input features (observation features + action dims).
        hidden: hidden widths (the same for every critic).
        activation: hidden activation.
        num_critics: ``K ≥ 1``.
        head: ``"regression"`` (one output) or ``"hl_gauss"`` (``num_bins`` logits).
        num_bins: bins of the HL-Gauss head.
        v_min: lowest bin centre of the HL-Gauss head.
        v_max: highest bin centre of the HL-Gauss head.

    Example:
        >>> ens = CriticEnsemble(5, (32, 32), "relu", num_critics=3)
        >>> ens.q_values(torch.zeros(8, 5)).shape
        torch.Size([3, 8])
    """

    support: torch.Tensor

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        activation: Activation,
        num_critics: int,
        head: CriticHead = "regression",
        num_bins: int = 101,
        v_min: float = -100.0,
        v_max: float = 100.0,
    ) -> None:
        super().__init__()
        if num_critics < 1:
            raise ValueError(f"num_critics must be ≥ 1, got {num_critics}")
        if head == "hl_gauss" and (num_bins < 2 or not v_max > v_min):
            raise ValueError(f"the hl_gauss head needs num_bins ≥ 2, v_max > v_min; got {num_bins}, {v_min}, {v_max}")
        self.num_critics = int(num_critics)
        self.head = head
        self.activation = _ACT[activation]
        self.out_dim = num_bins if head == "hl_gauss" else 1
        dims = [in_dim, *hidden, self.out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(dims):
            # nn.Linear's default initialisation, drawn per critic
            bound = 1.0 / fan_in**0.5
            self.weights.append(nn.Parameter(torch.empty(num_critics, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_critics, 1, fan_out).uniform_(-bound, bound)))
        self.register_buffer("support", torch.linspace(v_min, v_max, max(2, num_bins)))

    @property
    def bin_width(self) -> float:
        """Bin width of the HL-Gauss support (σ is ``sigma_ratio`` times this)."""
        return float(self.support[1] - self.support[0])

    def forward(self, x: torch.Tensor, *, detach: bool = False) -> torch.Tensor:
        """Raw outputs ``[K, B, out_dim]`` for inputs ``x [B, in_dim]`` (shared) or ``[K, B, in_dim]``.

        Args:
            x: critic inputs ``[features, action]``.
            detach: use detached weights (gradients flow into ``x`` only: the actor's loss).
        """
        k = self.num_critics
        ws = [w.detach() if detach else w for w in self.weights]
        bs = [b.detach() if detach else b for b in self.biases]
        if x.dim() == 2:  # shared input: one matmul against the K first layers side by side
            w0 = ws[0].permute(1, 0, 2).reshape(x.shape[1], -1)
            h = torch.addmm(bs[0].permute(1, 0, 2).reshape(1, -1), x, w0)
            h = h.view(x.shape[0], k, -1).transpose(0, 1)
        else:
            h = torch.baddbmm(bs[0], x, ws[0])
        for w, b in zip(ws[1:], bs[1:], strict=True):
            h = torch.baddbmm(b, self.activation(h), w)
        return h

    def expectation(self, out: torch.Tensor) -> torch.Tensor:
        """Q values ``[K, B]`` from raw outputs ``[K, B, out_dim]`` (the bins' expectation for HL-Gauss)."""
        if self.head == "hl_gauss":
            return torch.softmax(out, -1) @ self.support
        return out.squeeze(-1)

    def q_values(self, x: torch.Tensor, *, detach: bool = False) -> torch.Tensor:
        """Q values ``[K, B]`` of every critic at ``x [B, in_dim]``."""
        return self.expectation(self(x, detach=detach))

    def loss(self, out: torch.Tensor, target: torch.Tensor, sigma_ratio: float = 0.75) -> torch.Tensor:
        """Critic loss of raw outputs ``out [K, B, out_dim]`` against TD targets ``target [B]`` (not differentiated).

        Regression: ``½·Σ_k E[(Q_k − y)²]`` (SB3's SAC/TD3 critic loss up to the factor); HL-Gauss:
        ``Σ_k`` cross-entropy with σ = ``sigma_ratio`` × bin width.
        """
        y = target.detach()
        if self.head == "hl_gauss":
            k = self.num_critics
            logits = out.reshape(-1, self.out_dim)
            return k * hl_gauss_loss(logits, y.repeat(k), self.support, sigma_ratio * self.bin_width)
        return 0.5 * (out.squeeze(-1) - y).square().mean(1).sum()

    @torch.no_grad()
    def load_from(self, critics: nn.ModuleList) -> None:
        """Copy the weights of ``K`` per-critic MLPs (``nn.Linear`` layers, e.g. a policy's ``critics``) in."""
        torch._foreach_copy_(*self._pairs(critics, into_ensemble=True))

    def exporter(self, critics: nn.ModuleList) -> Callable[[], None]:
        """A function copying this ensemble's weights into ``K`` per-critic MLPs of the same shapes.

        The views are built once; each call is one fused ``_foreach_copy_`` (no per-critic Python loop).
        """
        dst, src = self._pairs(critics, into_ensemble=False)

        def export() -> None:
            with torch.no_grad():
                torch._foreach_copy_(dst, src)

        return export

    def _pairs(self, critics: nn.ModuleList, *, into_ensemble: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        layers = [[m for m in c.modules() if isinstance(m, nn.Linear)] for c in critics]
        if len(layers) != self.num_critics or any(len(ls) != len(self.weights) for ls in layers):
            raise ValueError(f"expected {self.num_critics} critics of {len(self.weights)} linear layers")
        if any(ls[-1].out_features != self.out_dim for ls in layers):
            raise ValueError(f"expected critics with {self.out_dim} outputs (the {self.head} head)")
        mine: list[torch.Tensor] = []
        theirs: list[torch.Tensor] = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            mine += [w[k].T for k in range(self.num_critics)] + [b[k, 0] for k in range(self.num_critics)]
            theirs += [ls[i].weight for ls in layers] + [ls[i].bias for ls in layers]
        return (mine, theirs) if into_ensemble else (theirs, mine)


def check_critic_head(cfg: Any, what: str) -> None:
    """Raise a ``ValueError`` for a bad ``critic_head`` or HL-Gauss field of ``cfg`` (SAC, TD3 configs)."""
    if cfg.critic_head not in ("regression", "hl_gauss"):
        raise ValueError(f"{what}.critic_head must be regression or hl_gauss, got {cfg.critic_head!r}")
    if cfg.critic_head == "hl_gauss":
        if cfg.num_bins < 2 or not cfg.v_max > cfg.v_min or cfg.sigma_ratio <= 0:
            raise ValueError(f"{what}: the hl_gauss head needs num_bins ≥ 2, v_max > v_min and sigma_ratio > 0")


def make_critic_ensemble(
    policy: nn.Module, cfg: Any, obs_dim: int, act_dim: int
) -> tuple[CriticEnsemble, Callable[[], None]]:
    """The twin critics of an actor policy as a fused ensemble, and the function syncing them into the policy.

    The ensemble starts from the policy's own (SB3-layout) critics and the returned function copies the
    trained weights back into them, so the saved policy's ``critic(obs, action)`` is the trained one (with the
    HL-Gauss head the policy's critics output the same ``num_bins`` logits over the same support). A policy
    without critics gets a fresh ensemble and a function that does nothing.
    """
    ens = CriticEnsemble(
        obs_dim + act_dim, cfg.hidden, cfg.activation, 2, cfg.critic_head, cfg.num_bins, cfg.v_min, cfg.v_max
    )
    critics = getattr(policy, "critics", None)
    if critics is None:
        return ens, lambda: None
    ens.load_from(critics)
    return ens, ens.exporter(critics)
