"""MnasNet's controller: an LSTM policy over the factorized space, trained with PPO.

The policy emits one token per free decision (one with more than one option), in ``space.decisions``
order: the
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
clipped ratio is against that old policy). The policy is defined once, in torch:
sampling steps the same LSTM token by token, the update differentiates
:meth:`Policy.log_probs` with autograd. Sampling draws its uniforms from the
controller's numpy ``Generator`` (saved with the run); the state holds the policy
and Adam state as a base64 ``torch.save`` buffer (loaded with ``weights_only=True``).
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch
from torch import nn

from controllers.base import FRESH_TRIES, Choices, Controller, ranking_reward
from nas.core.result import TrialResult
from nas.space import SearchSpace


class Policy(nn.Module):
    """Embedding → LSTM → per-decision softmax heads (one sliced Linear)."""

    def __init__(self, sizes: list[int], *, hidden: int = 100, embedding_dim: int = 100,
                 init_range: float = 0.1, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.sizes = sizes
        self.offsets = [int(o) for o in np.concatenate([[0], np.cumsum(sizes)[:-1]])]
        total = int(sum(sizes))
        self.embedding = nn.Embedding(total + 1, embedding_dim)   # token 0 = start
        self.lstm = nn.LSTM(embedding_dim, hidden, num_layers=1, batch_first=True)
        self.heads = nn.Linear(hidden, total)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-init_range, init_range, generator=generator)
        # Each decision's rows of ``heads``, padded to the widest decision (padding masked out).
        widest = max(sizes)
        rows = np.array([[offset + min(i, size - 1) for i in range(widest)]
                         for offset, size in zip(self.offsets, sizes)])
        valid = np.arange(widest)[None, :] < np.array(sizes)[:, None]
        self.register_buffer("rows", torch.from_numpy(rows), persistent=False)
        self.register_buffer("padding", torch.from_numpy(np.where(valid, 0.0, -1e9).astype(np.float32)),
                             persistent=False)

    def tokens(self, choices: torch.Tensor) -> torch.Tensor:
        """Inputs for teacher forcing: start, then each chosen option's token (all but the last)."""
        ids = choices + torch.tensor(self.offsets) + 1
        return torch.cat([torch.zeros(len(choices), 1, dtype=torch.long), ids[:, :-1]], dim=1)

    def log_probs(self, choices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-decision log-probs of ``choices`` (B, T) and the summed per-decision entropy, per row."""
        hidden, _ = self.lstm(self.embedding(self.tokens(choices)))                 # (B, T, hidden)
        logits = torch.einsum("bth,twh->btw", hidden, self.heads.weight[self.rows]) + self.heads.bias[self.rows]
        logp = torch.log_softmax(logits + self.padding, dim=-1)                       # (B, T, widest)
        picked = logp.gather(-1, choices.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        return picked, entropy.sum(-1)

    @torch.no_grad()
    def sample(self, rng: np.random.Generator, count: int = 1) -> list[tuple[Choices, list[float]]]:
        """``count`` independent architectures, token by token through the same LSTM, all at once.

        Each token is the inverse CDF of the decision's softmax at a uniform from ``rng``, so a run's
        draws are fixed by its saved numpy generator."""
        state = None
        tokens = torch.zeros(count, dtype=torch.long)
        choices = torch.zeros(count, len(self.sizes), dtype=torch.long)
        logps = torch.zeros(count, len(self.sizes))
        for step, (offset, size) in enumerate(zip(self.offsets, self.sizes)):
            hidden, state = self.lstm(self.embedding(tokens).unsqueeze(1), state)
            rows = slice(offset, offset + size)
            logits = nn.functional.linear(hidden[:, 0], self.heads.weight[rows], self.heads.bias[rows])
            logp = torch.log_softmax(logits, dim=-1)
            cdf = logp.exp().cumsum(dim=-1)
            draws = torch.from_numpy(rng.random(count)).float().unsqueeze(1) * cdf[:, -1:]
            index = (cdf <= draws).sum(dim=-1).clamp(max=size - 1)
            choices[:, step] = index
            logps[:, step] = logp.gather(-1, index.unsqueeze(-1)).squeeze(-1)
            tokens = offset + index + 1
        return [(tuple(row), lp) for row, lp in zip(choices.tolist(), logps.tolist())]


def ppo_loss(policy: Policy, choices: np.ndarray, old: np.ndarray, advantages: np.ndarray, *,
             clip: float, entropy_weight: float) -> torch.Tensor:
    """PPO's clipped loss on a batch, over :meth:`Policy.log_probs`.

    One clipped ratio per decision (token-level PPO): an architecture's ratio is a product over ~40
    decisions, and clipping that product would let a batch move each decision by a fraction of a
    percent; per decision, each may move by up to ``clip``."""
    logp, entropy = policy.log_probs(torch.as_tensor(choices))
    ratio = torch.exp(logp - torch.as_tensor(old))
    advantage = torch.as_tensor(advantages).unsqueeze(1)
    surrogate = torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)
    return -surrogate.sum(1).mean() - entropy_weight * entropy.mean()


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
        # One token per free decision (a fixed one has nothing to learn); a one-point space gets one token.
        self._positions = self.free or (0,)
        self.policy = Policy([len(space.decisions[i]) for i in self._positions], hidden=hidden, embedding_dim=embedding_dim,
                             init_range=init_range, generator=generator)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr, fused=True)  # one kernel per step
        self.baseline: float | None = None
        self.batch: list[tuple[list[int], list[float], float, bool]] = []  # (choices, old log-probs, reward, ok)
        self.updates = 0
        self.explored = 0  # proposals drawn uniformly because the policy only sampled known architectures
        self._blob: str | None = None  # the saved policy + Adam state; None = stale
        self._drawn: list[tuple[Choices, list[float]]] = []  # drawn from the current policy, not yet proposed

    def _propose(self) -> tuple[Choices, dict[str, Any]]:
        # A sample that repeats a known architecture is dropped and the policy sampled again (up to
        # FRESH_TRIES samples): its reward is known, and telling it again would only fill the batch with
        # the architectures the policy already prefers — the collapse that stalls a search. The proposal is
        # still a sample of the current policy, conditioned on being new; its own log-probability is kept.
        for tries in range(FRESH_TRIES):
            if not self._drawn:
                # Every proposal until the next update comes from the current policy: draw as many as
                # that update still waits for in one batched pass (they are dropped when it comes), or
                # after a rejected sample 32, which costs one pass too.
                count = max(1, self.batch_size - len(self.batch) - self.in_flight)
                self._drawn = self.policy.sample(self.rng, count if tries == 0 else max(count, 32))
            tokens, logp = self._drawn.pop(0)
            choices = [0] * len(self.space.decisions)
            for position, token in zip(self._positions, tokens):
                choices[position] = int(token)
            if not self.known(choices):
                return tuple(choices), {"logp": logp}
        return self._explore()

    def _explore(self) -> tuple[Choices, dict[str, Any]]:
        """A policy that has collapsed (FRESH_TRIES samples, all known) would spin on what it has seen: the
        proposal is then drawn uniformly among the architectures not yet known, and told to the policy
        like its own samples, with its log-probability under the current policy (the clipped ratio bounds
        how far one such sample moves it)."""
        self.explored += 1
        for _ in range(FRESH_TRIES):
            choices = self.space.sample_choices(self.rng)
            if not self.known(choices):
                break
        tokens = torch.tensor([[choices[position] for position in self._positions]])
        with torch.no_grad():
            logp, _ = self.policy.log_probs(tokens)
        return tuple(choices), {"logp": [float(x) for x in logp[0]]}

    def _observe(self, choices: Choices, extra: dict[str, Any], result: TrialResult) -> None:
        reward = ranking_reward(result) if result.ok else self.failure_reward
        tokens = [int(choices[position]) for position in self._positions]
        self.batch.append((tokens, [float(x) for x in extra["logp"]], reward, result.ok))
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
        for _ in range(self.epochs):   # on one thread, like all of ask and tell (controllers.base)
            self.optimizer.zero_grad()
            ppo_loss(self.policy, choices, old, advantages, clip=self.clip,
                     entropy_weight=self.entropy_weight).backward()
            self.optimizer.step()
        for _, _, reward, ok in self.batch:
            if ok and self.baseline is not None:
                self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        self.batch = []
        self.updates += 1
        self._blob = None
        self._drawn = []

    def _algorithm_state(self) -> dict[str, Any]:
        if self._blob is None:  # the weights change once per update; the state is asked for at every ask and tell
            buffer = io.BytesIO()
            torch.save({"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}, buffer)
            self._blob = base64.b64encode(buffer.getvalue()).decode("ascii")
        return {"torch": self._blob, "baseline": self.baseline,
                "batch": [list(item) for item in self.batch], "updates": self.updates, "explored": self.explored,
                "drawn": [[list(choices), logp] for choices, logp in self._drawn]}

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        blob = torch.load(io.BytesIO(base64.b64decode(state["torch"])), weights_only=True)
        self.policy.load_state_dict(blob["policy"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.baseline = state["baseline"]
        self.batch = [(list(c), [float(x) for x in lp], float(r), bool(ok)) for c, lp, r, ok in state["batch"]]
        self.updates = int(state["updates"])
        self.explored = int(state.get("explored", 0))
        self._drawn = [(tuple(int(c) for c in choices), [float(x) for x in logp])
                       for choices, logp in state.get("drawn", [])]
        self._blob = state["torch"]
