"""Slow, obviously-correct numpy references for the general kernel and every extended rule.

``train_general_ref`` runs per-sample SGD on a network of any depth the plain way: lists of
(rows, cols) matrices, the whole forward and backward pass per sample, then each layer's
writes from the rule's definition - sort every |dw| and keep the top ones, test every buffer
against its threshold, and so on. Only what a rule draws at random in Python (a fixed path,
a rotation order, a synapse mask) is taken from its plan; every selection made during
training is recomputed here from the rule's parameters.

The float recipe that *is* the specification is mirrored so that weights compare bit for bit
(float32 forward sums in input order, float64 output and error sums, the float32 weight step
float32(float32(-lr) pre) post); energy sums are formed however is plainest and compared with
a relative tolerance. Random neuron masks use numba's generator and have no reference here
(their tests check invariants instead).
"""
import math

import numpy as np

from neuroenergy import general_codes as G
from neuroenergy.rules import writes_per_sample
from neuroenergy.rules_extended import (AccumulateWrite, ErrorPath, LargestWeights, Lazy,
                                        RandomSynapseMask, ReadoutOnly, RotatingPath,
                                        SmallestUpdates, SynapticCaching, TopFractionPerNeuron)
from neuroenergy.rules import Backprop, Combined, Path, TopFraction
from reference import activation_ref, activation_slope_ref, output_error_ref

F32 = np.float32
F64 = np.float64


def _layer_fraction(rule, layer, n_layers):
    p_in, p_out = rule.fractions()
    return p_out if layer == n_layers - 1 else p_in


def _top_positive(values, k):
    """Flat indices of the k largest positive values (ties: lower index), ascending."""
    values = np.asarray(values, F64).ravel()
    pos = np.flatnonzero(values > 0.0)
    if k < 0 or k >= pos.size:
        return pos
    order = pos[np.argsort(-values[pos], kind="stable")][:k]
    return np.sort(order)


class RefState:
    """Weights, buffers, counts and meters of the reference, per layer."""

    def __init__(self, weights, buffered):
        self.w = [np.array(w, F32) for w in weights]
        self.s = [np.zeros_like(w) for w in self.w] if buffered else None
        self.counts = [np.zeros(w.shape, np.int64) for w in self.w]
        n = len(self.w)
        self.writes = np.zeros(n, np.int64)
        self.m1 = np.zeros(n)
        self.m1_pot = np.zeros(n)
        self.maintenance = np.zeros(n)
        self.change = np.zeros(n)
        self.updated = 0
        self.skipped = 0

    def effective(self, visible):
        if visible:
            return [(w + s).astype(F32) for w, s in zip(self.w, self.s)]
        return self.w

    def write(self, layer, ii, jj, step32, change64):
        """Apply float32 steps to the listed synapses and meter the float64 changes."""
        keep = change64 != 0.0
        ii, jj, step32, change64 = ii[keep], jj[keep], step32[keep], change64[keep]
        self.w[layer][ii, jj] = self.w[layer][ii, jj] + step32
        np.add.at(self.counts[layer], (ii, jj), 1)
        self.writes[layer] += ii.size
        self.m1[layer] += np.abs(change64).sum()
        self.m1_pot[layer] += change64[change64 > 0].sum()


def forward_ref(weights, xs, act, leak):
    """Activities of every layer (inputs first) as float32 vectors, pre-activations of the
    hidden layers, and the float64 output z."""
    hs, as_ = [np.asarray(xs, F32)], [None]
    for w in weights[:-1]:
        a = np.zeros(w.shape[1], F32)
        for i in range(w.shape[0]):  # float32, in input order
            a += hs[-1][i] * w[i]
        h = activation_ref(a, act, leak)
        h[0] = F32(1.0)
        hs.append(h)
        as_.append(a)
    z = np.zeros(weights[-1].shape[1])
    for j in range(weights[-1].shape[0]):  # float64, in unit order
        z = z + F64(hs[-1][j]) * weights[-1][j].astype(F64)
    return hs, as_, z


def backward_ref(weights, hs, as_, delta_out, act, leak):
    """Errors of every layer's units (index 0 unused: the inputs), float32; unit 0 of every
    hidden layer has none."""
    deltas = [None] * (len(weights) + 1)
    deltas[-1] = np.asarray(delta_out, F64).astype(F32)
    for l in range(len(weights) - 1, 0, -1):
        target = deltas[l + 1]
        back = np.array([sum(F64(w) * F64(t) for w, t in zip(weights[l][j], target))
                         for j in range(weights[l].shape[0])])
        d = (activation_slope_ref(as_[l].astype(F64), hs[l], act, leak) * back).astype(F32)
        d[0] = F32(0.0)
        deltas[l] = d
    return deltas


def units_of_sample(rule, plan, sizes, t, deltas):
    """Plastic flags of each hidden layer on sample t (index 0 of the list: the inputs)."""
    hidden = list(sizes[1:-1])
    on = [np.ones(sizes[0], bool)]
    start = 0
    for hl, h in enumerate(hidden):
        f = np.zeros(h, bool)
        if plan.unit_mode == G.UNITS_ALL:
            f[:] = True
        elif plan.unit_mode == G.UNITS_FIXED:
            f[:] = plan.unit_on[start:start + h] == 1
        elif isinstance(rule, RotatingPath):
            k = int(plan.k_units[hl])
            block = t // rule.period
            order = plan.perm[sum(x - 1 for x in hidden[:hl]):][:h - 1]
            f[order[(block * k + np.arange(k)) % (h - 1)]] = True
        elif isinstance(rule, ErrorPath):
            k = int(plan.k_units[hl])
            mags = np.abs(deltas[hl + 1][1:].astype(F64))
            f[1 + np.argsort(-mags, kind="stable")[:k]] = True
        else:
            raise ValueError(f"no reference for unit choice of {rule!r}")
        f[0] = True
        on.append(f)
        start += h
    on.append(np.ones(sizes[-1], bool))
    return on


def plastic_matrix(l, n_layers, on, restrict_out):
    pre = on[l] if (l > 0 and restrict_out) else np.ones(on[l].size, bool)
    post = on[l + 1].copy()
    if l < n_layers - 1:
        post[0] = False  # the clamped bias unit has no incoming plasticity
    return np.outer(pre, post)


def selected_writes(rule, plan, l, n_layers, pre, post, plastic, w):
    """Boolean (rows, cols) matrix of the synapses a non-buffered rule writes."""
    mag = np.abs(np.outer(pre.astype(F64), post.astype(F64)))
    cand = plastic & (mag > 0.0)
    n_plastic = int(plastic.sum())
    p = _layer_fraction(rule, l, n_layers)
    k = writes_per_sample(p, n_plastic)
    sel = np.zeros_like(cand)
    if type(rule) in (Backprop, Path, ReadoutOnly) or k < 0 or \
            (isinstance(rule, (ErrorPath, RotatingPath)) and p >= 1.0):
        return cand
    if isinstance(rule, (TopFraction, Combined, ErrorPath, RotatingPath)):
        sel.flat[_top_positive(np.where(cand, mag, 0.0), k)] = True
    elif isinstance(rule, SmallestUpdates):
        inv = np.where(cand, 1.0 / np.where(cand, mag, 1.0), 0.0)
        sel.flat[_top_positive(inv, k)] = True
    elif isinstance(rule, LargestWeights):
        sel.flat[_top_positive(np.where(cand, np.abs(w.astype(F64)), 0.0), k)] = True
    elif isinstance(rule, TopFractionPerNeuron):
        rows_on = plastic.any(axis=1)
        m = writes_per_sample(p, int(rows_on.sum()))
        rows = np.flatnonzero(rows_on & (pre != 0))
        keep = rows if m < 0 else np.sort(rows[np.argsort(-np.abs(pre[rows].astype(F64)),
                                                         kind="stable")[:m]])
        sel[keep, :] = True
        sel &= cand
    elif isinstance(rule, RandomSynapseMask):
        off = sum(plan.sizes[i] * plan.sizes[i + 1] for i in range(l))
        mask = plan.mask[off:off + w.size].reshape(w.shape) == 1
        sel = cand & mask
    else:
        raise ValueError(f"no reference for {rule!r}")
    return sel


def buffered_layer(rule, plan, st, l, n_layers, pre, post, plastic, active):
    """Decay, accumulate, consolidate, charge maintenance - the documented order."""
    lr = plan_lr(st, l)
    s = st.s[l]
    if plan.decay < 1.0:
        s *= F32(plan.decay)
    if active:
        rows = np.flatnonzero(plastic.any(axis=1) & (pre != 0))
        cols = np.flatnonzero(plastic.any(axis=0) & (post != 0))
        for i in rows:
            c = F32(-F32(lr) * pre[i])
            s[i, cols] += c * post[cols]
            st.change[l] += plan.b * float(np.abs(lr * F64(pre[i]) * post[cols].astype(F64))
                                           .sum())
    mag = np.abs(s.astype(F64))
    if isinstance(rule, AccumulateWrite) and rule.theta is None:
        k = writes_per_sample(_layer_fraction(rule, l, n_layers), int(plastic.sum())) \
            if active else 0
        go = np.zeros(s.shape, bool)
        if k != 0:
            go.flat[_top_positive(mag, k)] = True
    else:
        theta = rule.theta
        scope = getattr(rule, "consolidation", "synapse")
        over = mag > theta
        if scope == "synapse":
            go = over
        elif scope == "neuron":
            go = np.broadcast_to(over.any(axis=0), s.shape) & (s != 0)
        elif scope == "layer":
            go = np.full(s.shape, over.any()) & (s != 0)
        else:
            raise ValueError(scope)
    ii, jj = np.nonzero(go & (s != 0))
    st.write(l, ii, jj, s[ii, jj].copy(), s[ii, jj].astype(F64))
    s[ii, jj] = F32(0.0)
    st.maintenance[l] += plan.c * float(np.abs(s.astype(F64)).sum())


def plan_lr(st, l):
    return st.lrs[l]


def train_general_ref(rule, plan, weights, x, y, sample_idx, lrs, act=0, leak=0.1, loss=0):
    """Train ``weights`` (list of float32 matrices) with ``rule`` on ``x[sample_idx]``.

    ``plan`` is ``plan_for(rule, sizes, rng)``: only its random draws (fixed units, rotation
    order, mask) and its buffer constants are used. Returns the :class:`RefState`.
    """
    base = rule.base if isinstance(rule, Lazy) else rule
    margin = rule.margin if isinstance(rule, Lazy) else None
    buffered = isinstance(base, (AccumulateWrite, SynapticCaching))
    visible = isinstance(base, SynapticCaching)
    st = RefState(weights, buffered)
    st.lrs = list(lrs)
    sizes = plan.sizes
    n_layers = len(sizes) - 1
    for t, row in enumerate(sample_idx):
        eff = st.effective(visible)
        hs, as_, z = forward_ref(eff, x[row], act, leak)
        delta_out = output_error_ref(z, y[row], loss)
        assert delta_out is not None
        active = True
        if margin is not None:
            others = np.delete(z, y[row])
            active = z[y[row]] - others.max() <= margin
        if active:
            st.updated += 1
            deltas = backward_ref(eff, hs, as_, delta_out, act, leak)
            on = units_of_sample(base, plan, sizes, t, deltas)
        else:
            st.skipped += 1
            if not buffered:
                continue
            deltas = [np.zeros(n, F32) for n in sizes]
            on = [np.ones(n, bool) for n in sizes]
        for l in range(n_layers - 1, -1, -1):
            if isinstance(base, ReadoutOnly) and l < n_layers - 1:
                continue
            restrict = not (isinstance(base, ErrorPath) and not base.outgoing)
            plastic = plastic_matrix(l, n_layers, on, restrict)
            pre, post = hs[l], deltas[l + 1]
            if buffered:
                buffered_layer(base, plan, st, l, n_layers, pre, post, plastic, active)
                continue
            sel = selected_writes(base, plan, l, n_layers, pre, post, plastic, st.w[l])
            ii, jj = np.nonzero(sel)
            change = -st.lrs[l] * pre[ii].astype(F64) * post[jj].astype(F64)
            step = (-F32(st.lrs[l]) * pre[ii]).astype(F32) * post[jj]
            st.write(l, ii, jj, step, change)
    return st


def caching_bounds(m_consolidation, remainder_abs, m1_min, m1_backprop):
    """The bracket synaptic caching without maintenance or decay must satisfy:
    M_min <= consolidation + remainder <= M1 of writing every update (triangle inequality,
    per synapse: the consolidated batches and the final remainder partition its updates)."""
    total = m_consolidation + remainder_abs
    return m1_min <= total * (1 + 1e-9) and total <= m1_backprop * (1 + 1e-9)


def random_walk_caching_cost(eta, theta, c, steps, rng):
    """Per-step cost of caching one synapse under +-eta random-walk updates (no decay):
    consolidations (|s| when |s| > theta) plus c |s| per step. For the theory check."""
    s, cost = 0.0, 0.0
    signs = rng.choice([-1.0, 1.0], size=steps)
    for sign in signs:
        s += sign * eta
        if abs(s) > theta + 1e-12:
            cost += abs(s)
            s = 0.0
        cost += c * abs(s)
    return cost / steps


__all__ = ["train_general_ref", "forward_ref", "backward_ref", "caching_bounds",
           "random_walk_caching_cost", "math"]
