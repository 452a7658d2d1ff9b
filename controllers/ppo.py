"""MnasNet's controller: an LSTM policy over the factorized space, trained with PPO.

The policy emits one token per decision, in ``space.decisions`` order: the
previous token's embedding (a start token first) → a one-layer LSTM with 100
hidden units → that decision's softmax head. All heads are one ``Linear`` whose
rows are sliced per decision; all weights start uniform in [−0.1, 0.1].

From the papers (MnasNet §5, reusing NASNet's controller): LSTM 100 units,
init U(−0.1, 0.1), PPO, Adam lr 0.00035, entropy weight 1e-5, reward baseline =
moving average with decay 0.95. Not given there, chosen here (all options):

* ``embedding_dim=100`` (same as the hidden size), ``clip=0.2`` (PPO's default),
* ``batch_size=8`` completed trials per update and ``epochs=8`` full-batch passes
  over each batch (PPO's "several epochs"),
* the baseline starts at the first successful reward and is updated with
  successful rewards only, in the order they were told;
* a failure (or a ``max_macs`` rejection) counts with ``failure_reward=0.0``: rewards
  are ≥ 0, so its advantage is ≤ 0 — the policy is pushed away from it, never towards it.

Asynchronous: each proposal's log-probability under the policy that sampled it
is kept from ask time, so tells may arrive out of order and after updates (the
clipped ratio is against that old policy). Sampling uses the controller's numpy
``Generator``; the state holds the policy and Adam state as a base64
``torch.save`` buffer (loaded with ``weights_only=True``).

Speed: the policy is tiny, so torch's per-operator overhead, not arithmetic, is what an update costs.
Sampling and the update's forward and backward pass run as numpy float32
(:mod:`controllers.ppo_gradients`); torch keeps the weights, Adam and the saved state, and
:meth:`Policy.log_probs` is the torch definition the tests hold the numpy code to.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch
from torch import nn

from controllers.base import Choices, Controller, ranking_reward
from controllers.ppo_gradients import PARAMETERS, Layout, loss_and_gradients
from nas.result import TrialResult
from nas.space import SearchSpace


class Policy(nn.Module):
    """Embedding → LSTM → per-decision softmax heads (one sliced Linear)."""

    def __init__(self, sizes: list[int], *, hidden: int = 100, embedding_dim: int = 100,
                 init_range: float = 0.1, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.sizes = sizes
        self.layout = Layout.of(sizes)
        self.offsets = [int(o) for o in self.layout.offsets]
        total = int(sum(sizes))
        self.embedding = nn.Embedding(total + 1, embedding_dim)   # token 0 = start
        self.lstm = nn.LSTM(embedding_dim, hidden, num_layers=1, batch_first=True)
        self.heads = nn.Linear(hidden, total)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-init_range, init_range, generator=generator)
        # Each decision's rows of ``heads``, padded to the widest decision (padding masked out).
        self.register_buffer("rows", torch.from_numpy(self.layout.rows), persistent=False)
        self.register_buffer("padding", torch.from_numpy(np.where(self.layout.valid, 0.0, -1e9).astype(np.float32)),
                             persistent=False)

    def tokens(self, choices: torch.Tensor) -> torch.Tensor:
        """Inputs for teacher forcing: start, then each chosen option's token (all but the last)."""
        ids = choices + torch.tensor(self.offsets) + 1
        return torch.cat([torch.zeros(len(choices), 1, dtype=torch.long), ids[:, :-1]], dim=1)

    def log_probs(self, choices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-decision log-probs of ``choices`` (B, T) and the summed per-decision entropy, per row.

        The policy's definition in torch. The update computes the same loss and its gradients in numpy
        (:mod:`controllers.ppo_gradients`, less per-call overhead); the tests hold the two equal."""
        hidden, _ = self.lstm(self.embedding(self.tokens(choices)))                 # (B, T, hidden)
        logits = torch.einsum("bth,twh->btw", hidden, self.heads.weight[self.rows]) + self.heads.bias[self.rows]
        logp = torch.log_softmax(logits + self.padding, dim=-1)                       # (B, T, widest)
        picked = logp.gather(-1, choices.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        return picked, entropy.sum(-1)

    @torch.no_grad()
    def numpy_weights(self) -> dict[str, np.ndarray]:
        """The weights sampling needs, as numpy float32 (torch's precision; numpy's float32 kernels are
        2–5× faster than float64's): the input projection of every token precomputed."""
        lstm = self.lstm
        inputs = self.embedding.weight @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + lstm.bias_hh_l0
        return {"inputs": inputs.numpy(), "recurrent": np.ascontiguousarray(lstm.weight_hh_l0.detach().numpy().T),
                "heads": self.heads.weight.detach().numpy().copy(), "bias": self.heads.bias.detach().numpy().copy()}

    def sample(self, rng: np.random.Generator, weights: dict[str, np.ndarray],
               count: int = 1) -> list[tuple[Choices, list[float]]]:
        """``count`` architectures token by token, all at once (the LSTM cell in numpy, batched).

        Each architecture is an independent draw from the policy; drawing several per call costs
        about what one costs, since the time goes into ~45 small numpy calls per decision."""
        hidden = np.zeros((count, weights["recurrent"].shape[0]), dtype=np.float32)
        cell, tokens = np.zeros_like(hidden), np.zeros(count, dtype=int)
        choices, logps = np.zeros((count, len(self.sizes)), dtype=int), np.zeros((count, len(self.sizes)))
        width = hidden.shape[1]
        rows = np.arange(count)
        for step, (offset, size) in enumerate(zip(self.offsets, self.sizes)):
            gates = weights["inputs"][tokens] + hidden @ weights["recurrent"]
            cell = _sigmoid(gates[:, width:2 * width]) * cell + \
                _sigmoid(gates[:, :width]) * np.tanh(gates[:, 2 * width:3 * width])
            hidden = _sigmoid(gates[:, 3 * width:]) * np.tanh(cell)
            logits = hidden @ weights["heads"][offset:offset + size].T + weights["bias"][offset:offset + size]
            logits -= logits.max(axis=1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            cdf = np.cumsum(np.exp(logp), axis=1)
            draws = rng.random(count)[:, None] * cdf[:, -1:]
            index = np.minimum((cdf <= draws).sum(axis=1), size - 1)   # inverse CDF
            choices[:, step] = index
            logps[:, step] = logp[rows, index]
            tokens = offset + index + 1
        return [(tuple(int(c) for c in row), [float(x) for x in lp]) for row, lp in zip(choices, logps)]


def torch_loss(policy: Policy, choices: np.ndarray, old: np.ndarray, advantages: np.ndarray, *,
               clip: float, entropy_weight: float) -> torch.Tensor:
    """PPO's loss on a batch, in torch over :meth:`Policy.log_probs`: the definition the numpy update
    (:func:`controllers.ppo_gradients.loss_and_gradients`) is tested against.

    One clipped ratio per decision (token-level PPO): an architecture's ratio is a product over ~40
    decisions, and clipping that product would let a batch move each decision by a fraction of a
    percent; per decision, each may move by up to ``clip``."""
    logp, entropy = policy.log_probs(torch.as_tensor(choices))
    ratio = torch.exp(logp - torch.as_tensor(old))
    advantage = torch.as_tensor(advantages).unsqueeze(1)
    surrogate = torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)
    return -surrogate.sum(1).mean() - entropy_weight * entropy.mean()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class PPO(Controller):
    name = "ppo"

    def __init__(self, space: SearchSpace, *, seed: int, lr: float = 0.00035, entropy_weight: float = 1e-5,
                 baseline_decay: float = 0.95, clip: float = 0.2, batch_size: int = 8, epochs: int = 8,
                 hidden: int = 100, embedding_dim: int = 100, init_range: float = 0.1,
                 failure_reward: float = 0.0, **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        if batch_size < 1 or epochs < 1:
            raise ValueError(f"batch_size and epochs must be >= 1, got {batch_size} and {epochs}")
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        self.entropy_weight, self.baseline_decay, self.clip = entropy_weight, baseline_decay, clip
        self.batch_size, self.epochs, self.failure_reward = batch_size, epochs, failure_reward
        generator = torch.Generator().manual_seed(self.seed)
        self.policy = Policy([len(d) for d in space.decisions], hidden=hidden, embedding_dim=embedding_dim,
                             init_range=init_range, generator=generator)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr, fused=True)  # one kernel per step
        self.baseline: float | None = None
        self.batch: list[tuple[list[int], list[float], float, bool]] = []  # (choices, old log-probs, reward, ok)
        self.updates = 0
        self._weights: dict[str, np.ndarray] | None = None  # numpy copy for sampling; None = stale
        self._blob: str | None = None  # the saved policy + Adam state; None = stale
        self._drawn: list[tuple[Choices, list[float]]] = []  # drawn from the current policy, not yet proposed

    def _propose(self) -> tuple[Choices, dict[str, Any]]:
        if self._weights is None:
            self._weights = self.policy.numpy_weights()
        if not self._drawn:
            # Every proposal until the next update comes from the current policy: draw as many as
            # that update still waits for in one batched pass (they are dropped when it comes).
            count = max(1, self.batch_size - len(self.batch) - self.in_flight)
            self._drawn = self.policy.sample(self.rng, self._weights, count)
        choices, logp = self._drawn.pop(0)
        return choices, {"logp": logp}

    def _observe(self, choices: Choices, extra: dict[str, Any], result: TrialResult) -> None:
        reward = ranking_reward(result) if result.ok else self.failure_reward
        self.batch.append((list(choices), [float(x) for x in extra["logp"]], reward, result.ok))
        if len(self.batch) >= self.batch_size:
            self._update()

    def _update(self) -> None:
        """PPO on the completed batch: advantages against the moving-average baseline, clipped ratio."""
        rewards = [reward for _, _, reward, _ in self.batch]
        if self.baseline is None:
            self.baseline = next((r for _, _, r, ok in self.batch if ok), None)
        baseline = self.baseline if self.baseline is not None else 0.0
        advantages = np.array([r - baseline for r in rewards], dtype=np.float32)   # one per architecture
        choices = np.array([c for c, _, _, _ in self.batch], dtype=np.intp)
        old = np.array([logp for _, logp, _, _ in self.batch], dtype=np.float32)     # (B, T)
        parameters = dict(self.policy.named_parameters())
        for _ in range(self.epochs):   # on one thread, like all of ask and tell (controllers.base)
            for name, grad in self._gradients(choices, old, advantages).items():
                parameters[name].grad = grad
            self.optimizer.step()
        for _, _, reward, ok in self.batch:
            if ok and self.baseline is not None:
                self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        self.batch = []
        self.updates += 1
        self._weights = None
        self._blob = None
        self._drawn = []

    def _gradients(self, choices: np.ndarray, old: np.ndarray, advantages: np.ndarray) -> dict[str, torch.Tensor]:
        """One PPO epoch's gradients, computed in numpy on views of the weights (Adam steps them in place)."""
        parameters = dict(self.policy.named_parameters())
        weights = {name: parameters[name].detach().numpy() for name in PARAMETERS}
        _, grads = loss_and_gradients(weights, self.policy.layout, choices, old, advantages,
                                      clip=self.clip, entropy_weight=self.entropy_weight)
        return {name: torch.from_numpy(grad) for name, grad in grads.items()}

    def _algorithm_state(self) -> dict[str, Any]:
        if self._blob is None:  # the weights change once per update; the state is asked for at every ask and tell
            buffer = io.BytesIO()
            torch.save({"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}, buffer)
            self._blob = base64.b64encode(buffer.getvalue()).decode("ascii")
        return {"torch": self._blob, "baseline": self.baseline,
                "batch": [list(item) for item in self.batch], "updates": self.updates,
                "drawn": [[list(choices), logp] for choices, logp in self._drawn]}

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        blob = torch.load(io.BytesIO(base64.b64decode(state["torch"])), weights_only=True)
        self.policy.load_state_dict(blob["policy"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.baseline = state["baseline"]
        self.batch = [(list(c), [float(x) for x in lp], float(r), bool(ok)) for c, lp, r, ok in state["batch"]]
        self.updates = int(state["updates"])
        self._drawn = [(tuple(int(c) for c in choices), [float(x) for x in logp])
                       for choices, logp in state.get("drawn", [])]
        self._weights = None
        self._blob = state["torch"]
