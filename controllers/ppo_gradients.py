"""The PPO loss of the LSTM policy and its gradients, forward and backward written out in numpy.

Why by hand: the policy is tiny (one LSTM layer of 100 units over ~43 decisions, 8 architectures per
update), so an update's time goes into per-call overhead, not arithmetic. Under torch autograd, oneDNN's
LSTM forward and backward alone took ~2.8 ms of an epoch for ~85 MFLOP; numpy's float32 calls on these
(8, 400) arrays cost ~1 µs each, torch's several. It is the same function: the tests check the loss
and every gradient against torch autograd over :meth:`controllers.ppo.Policy.log_probs`.

The math, per architecture ``b`` and decision ``t`` (PyTorch's LSTM, gate order input, forget, cell,
output):

* ``z_t = table[token_t] + h_{t-1} W_hh^T``, with ``table = E W_ih^T + b_ih + b_hh`` (every token's
  input projection at once), ``c_t = f ⊙ c_{t-1} + i ⊙ g``, ``h_t = o ⊙ tanh(c_t)``;
* decision ``t``'s logits are ``h_t`` times its own rows of the heads; ``ℓ = log_softmax``;
* ``loss = −mean_b Σ_t min(r A_b, clip(r, 1 ± ε) A_b) − w_H · mean_b Σ_t H_bt``, ``r = exp(ℓ_picked − ℓ_old)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

PARAMETERS = ("embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
              "lstm.bias_hh_l0", "heads.weight", "heads.bias")


@dataclass(frozen=True)
class Layout:
    """Where each decision's options sit among the policy's tokens and head rows."""

    offsets: np.ndarray   # (T,) first head row of each decision
    rows: np.ndarray      # (T, widest) head row of each option, 0 where a decision has fewer options
    valid: np.ndarray     # (T, widest) True where ``rows`` is an option

    @classmethod
    def of(cls, sizes: list[int]) -> Layout:
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        widest = max(sizes)
        valid = np.arange(widest)[None, :] < np.asarray(sizes)[:, None]
        rows = np.where(valid, offsets[:, None] + np.arange(widest)[None, :], 0)
        return cls(offsets, rows, valid)


def loss_and_gradients(weights: dict[str, np.ndarray], layout: Layout, choices: np.ndarray, old: np.ndarray,
                       advantages: np.ndarray, *, clip: float, entropy_weight: float
                       ) -> tuple[float, dict[str, np.ndarray]]:
    """The PPO loss on a batch and its gradient for each of :data:`PARAMETERS`, in the weights' dtype.

    ``choices`` (B, T) option indices, ``old`` (B, T) their log-probs under the policy that drew them,
    ``advantages`` (B,) one per architecture."""
    embedding, w_ih, w_hh = weights["embedding.weight"], weights["lstm.weight_ih_l0"], weights["lstm.weight_hh_l0"]
    heads, head_bias = weights["heads.weight"], weights["heads.bias"]
    batch, steps = choices.shape
    width, dtype = w_hh.shape[1], w_hh.dtype   # float32 like torch's: numpy's float32 kernels are 2–5× faster
    old, advantages = old.astype(dtype, copy=False), advantages.astype(dtype, copy=False)

    # ---- forward: the LSTM, time-major so each step's slices are contiguous
    # One tanh gives all four activations: sigmoid(x) = (1 + tanh(x / 2)) / 2 for i, f, o; tanh(x) for g.
    # The halving is folded into the token table and the recurrent weights, once.
    half, shift = _gate_scales(width, dtype)
    table = embedding @ w_ih.T
    table += weights["lstm.bias_ih_l0"]
    table += weights["lstm.bias_hh_l0"]
    tokens = np.zeros((steps, batch), dtype=np.intp)   # start token 0, then the previous decision's option
    tokens[1:] = (choices[:, :-1] + layout.offsets[:-1] + 1).T
    inputs = (table * half)[tokens]                                          # (T, B, 4H)
    w_hh_half = (w_hh * half[:, None]).T.copy()                              # (H, 4H), C-contiguous for BLAS
    gates = np.empty((steps, batch, 4 * width), dtype=dtype)
    hidden = np.zeros((steps + 1, batch, width), dtype=dtype)                # hidden[t] = h_{t-1}
    cells = np.zeros((steps + 1, batch, width), dtype=dtype)                 # cells[t] = c_{t-1}
    tanh_cells = np.empty((steps, batch, width), dtype=dtype)
    tmp = np.empty((batch, width), dtype=dtype)
    per_step = zip(gates, inputs, hidden[:-1], hidden[1:], cells[:-1], cells[1:], tanh_cells,
                   gates[..., :width], gates[..., width:2 * width], gates[..., 2 * width:3 * width], gates[..., 3 * width:])
    for activation, x, h, h_next, c, c_next, tc, a_i, a_f, a_g, a_o in per_step:
        np.matmul(h, w_hh_half, out=activation)
        activation += x
        np.tanh(activation, out=activation)
        activation *= half
        activation += shift
        np.multiply(a_f, c, out=c_next)
        np.multiply(a_i, a_g, out=tmp)
        c_next += tmp
        np.tanh(c_next, out=tc)
        np.multiply(a_o, tc, out=h_next)
    i, f, g, o = (gates[..., k * width:(k + 1) * width] for k in range(4))
    outputs = hidden[1:]                                                     # (T, B, H)

    # ---- forward: each decision's softmax over its own options, option-major (W, T, B) so that the
    # reductions over a decision's few options are elementwise over all T·B rows
    head_rows = heads[layout.rows]                                           # (T, W, H)
    logits = np.ascontiguousarray((head_rows @ outputs.transpose(0, 2, 1)).transpose(1, 0, 2))
    logits += layout_bias(layout, head_bias)
    logits -= logits.max(axis=0)
    probs = np.exp(logits)
    total = probs.sum(axis=0)
    probs /= total
    logits -= np.log(total)
    logp = np.where(layout.valid.T[:, :, None], logits, 0.0)               # 0, not −inf, where there is no option
    entropy = -(probs * logp).sum(axis=0)                                    # (T, B)
    picked_at = (choices.T, *np.indices((steps, batch)))
    picked = logp[picked_at]                                                 # (T, B)
    ratio = np.exp(picked - old.T)
    advantage = advantages[None, :]
    unclipped, clipped = ratio * advantage, np.clip(ratio, 1 - clip, 1 + clip) * advantage
    loss = -(np.minimum(unclipped, clipped).sum() + entropy_weight * entropy.sum()) / batch

    # ---- backward: the heads (the min's gradient flows through whichever side it took: the unclipped
    # side on ties, where both carry the same gradient; the clipped side is flat outside the range)
    d_picked = -(advantage * (unclipped <= clipped)) * ratio / batch        # (T, B)
    d_logits = probs * (entropy_weight / batch * (logp + entropy) - d_picked)  # dH/dz = −p (ℓ + H)
    d_logits[picked_at] += d_picked
    by_decision = d_logits.transpose(1, 0, 2)                                # (T, W, B)
    # The valid (decision, option) pairs in order are the head rows 0, 1, 2, …: no scatter needed.
    d_heads = (by_decision @ outputs)[layout.valid]
    d_head_bias = by_decision.sum(axis=2)[layout.valid]
    d_outputs = by_decision.transpose(0, 2, 1) @ head_rows                   # (T, B, H)

    # ---- backward through time; what does not depend on the recurrence is computed for all steps at once
    sigmoid_slope = gates * (1 - gates)                                      # for i, f and o
    from_output = tanh_cells * sigmoid_slope[..., 3 * width:]               # dz_o = dh ⊙ this
    into_cell = 1 - tanh_cells * tanh_cells
    into_cell *= o                                                           # dc += dh ⊙ this
    from_cell = np.empty((steps, batch, 3, width), dtype=dtype)             # dz_{i,f,g} = dc ⊙ this
    np.multiply(g, sigmoid_slope[..., :width], out=from_cell[:, :, 0])
    np.multiply(cells[:-1], sigmoid_slope[..., width:2 * width], out=from_cell[:, :, 1])
    np.multiply(g, g, out=from_cell[:, :, 2])
    np.subtract(1, from_cell[:, :, 2], out=from_cell[:, :, 2])
    from_cell[:, :, 2] *= i
    d_gates = np.empty_like(gates)
    d_gates_ifg = d_gates[..., :3 * width].reshape(steps, batch, 3, width)
    d_hidden, d_cell = np.zeros((batch, width), dtype=dtype), np.zeros((batch, width), dtype=dtype)
    per_step = zip(d_outputs[::-1], into_cell[::-1], from_cell[::-1], d_gates_ifg[::-1], d_gates[::-1],
                   d_gates[::-1, :, 3 * width:], from_output[::-1], f[::-1])
    for d_out, to_cell, cell_to_ifg, dz_ifg, dz, dz_o, out_to_o, forget in per_step:
        d_hidden += d_out
        np.multiply(d_hidden, to_cell, out=tmp)
        d_cell += tmp
        np.multiply(d_cell[:, None, :], cell_to_ifg, out=dz_ifg)
        np.multiply(d_hidden, out_to_o, out=dz_o)
        d_cell *= forget
        np.matmul(dz, w_hh, out=d_hidden)
    flat_gates = d_gates.reshape(-1, 4 * width)
    # Each token's rows summed: torch's index_add_ does it in ~30 µs, numpy's add.at in ~1.1 ms.
    d_table = torch.from_numpy(np.zeros_like(table)).index_add_(
        0, torch.from_numpy(tokens.ravel()), torch.from_numpy(flat_gates)).numpy()
    d_bias = d_table.sum(axis=0)
    return float(loss), {"embedding.weight": d_table @ w_ih, "lstm.weight_ih_l0": d_table.T @ embedding,
                         "lstm.weight_hh_l0": flat_gates.T @ hidden[:-1].reshape(-1, width),
                         "lstm.bias_ih_l0": d_bias, "lstm.bias_hh_l0": d_bias.copy(),
                         "heads.weight": d_heads, "heads.bias": d_head_bias}


def layout_bias(layout: Layout, head_bias: np.ndarray) -> np.ndarray:
    """(W, T, 1): each decision's option biases, −inf where a decision has fewer options."""
    return np.where(layout.valid, head_bias[layout.rows], -np.inf).T[:, :, None]


@functools.lru_cache(maxsize=8)
def _gate_scales(width: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Per gate column (i, f, g, o): the factor and offset that turn ``tanh(x / 2)`` into ``sigmoid(x)``
    for i, f, o, and leave g's ``tanh(x)`` as it is."""
    half = np.full(4 * width, 0.5, dtype=dtype)
    half[2 * width:3 * width] = 1.0
    shift = half.copy()
    shift[2 * width:3 * width] = 0.0
    half.flags.writeable = shift.flags.writeable = False
    return half, shift
