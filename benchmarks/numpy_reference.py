"""The study's per-sample SGD recipe in plain numpy (and in PyTorch, when it is installed),
written the way a user would write it: the whole network forward and backward per sample,
the update as an outer product, the top fraction by ``argpartition`` on |dw|, the path as
the plastic units' columns, the energy meter and write counts from the update matrix.

These are the side-by-side references of ``bench_kernels.py``. They follow the recipe of
``neuroenergy.sgd_kernel.train_chunk`` (leaky ReLU, squared error, hidden unit 0 clamped to
1 as the output bias, hidden error from the output weights before the update) and reach the
same weights up to float rounding; they are not part of the package.
"""
import numpy as np


class NumpySGD:
    """Per-sample SGD on the full network (w_in (n_in, hidden), w_out (hidden, n_out)).

    ``units``: the plastic hidden units (all for backprop / top-fraction); ``k1`` / ``k2``:
    updates written per sample in each layer among the plastic synapses (-1: all)."""

    def __init__(self, w_in, w_out, units, k1=-1, k2=-1, lr=0.01, leak=0.1):
        self.w_in = np.array(w_in, np.float32)
        self.w_out = np.array(w_out, np.float32)
        self.lr, self.leak, self.k1, self.k2 = lr, leak, k1, k2
        self.units = np.asarray(units)
        self.all_plastic = len(self.units) == self.w_in.shape[1]
        self.counts_in = np.zeros(self.w_in.shape, np.int32)
        self.counts_out = np.zeros(self.w_out.shape, np.int32)
        self.m0 = 0
        self.m1 = 0.0

    def step(self, x, label):
        a = x @ self.w_in
        h = np.where(a > 0, a, np.float32(self.leak) * a)
        h[0] = 1.0
        z = h.astype(np.float64) @ self.w_out
        delta = z.copy()
        delta[label] -= 1.0
        back = self.w_out.astype(np.float64) @ delta
        dh = np.where(a > 0, 1.0, self.leak) * back
        dh[0] = 0.0
        if self.all_plastic:
            self.w_out, self.counts_out = self._write(self.w_out, self.counts_out, h, delta,
                                                      self.k2)
            self.w_in, self.counts_in = self._write(self.w_in, self.counts_in, x, dh, self.k1)
        else:  # the path: only the plastic units' synapses
            u = self.units
            self.w_out[u], self.counts_out[u] = self._write(
                self.w_out[u], self.counts_out[u], h[u], delta, self.k2)
            self.w_in[:, u], self.counts_in[:, u] = self._write(
                self.w_in[:, u], self.counts_in[:, u], x, dh[u], self.k1)

    def _write(self, w, counts, pre, post, k):
        dw = -self.lr * np.outer(pre, post)
        if k >= 0:
            flat = np.abs(dw).ravel()
            keep = np.argpartition(flat, -k)[-k:]
            sparse = np.zeros_like(flat)
            sparse[keep] = dw.ravel()[keep]
            dw = sparse.reshape(dw.shape)
        written = dw != 0.0
        self.m0 += int(np.count_nonzero(written))
        self.m1 += float(np.abs(dw).sum())
        return w + dw.astype(np.float32), counts + written

    def train(self, x, y, sample_idx):
        for row in sample_idx:
            self.step(x[row], y[row])
        return len(sample_idx)


class TorchSGD:
    """:class:`NumpySGD` with PyTorch tensors on the CPU (one thread), the same recipe."""

    def __init__(self, w_in, w_out, units, k1=-1, k2=-1, lr=0.01, leak=0.1):
        import torch
        torch.set_num_threads(1)
        self.torch = torch
        ref = NumpySGD(w_in, w_out, units, k1, k2, lr, leak)
        self.w_in = torch.from_numpy(ref.w_in)
        self.w_out = torch.from_numpy(ref.w_out)
        self.units = torch.from_numpy(ref.units)
        self.all_plastic = ref.all_plastic
        self.counts_in = torch.zeros(self.w_in.shape, dtype=torch.int32)
        self.counts_out = torch.zeros(self.w_out.shape, dtype=torch.int32)
        self.lr, self.leak, self.k1, self.k2 = lr, leak, k1, k2
        self.m0 = 0
        self.m1 = 0.0

    def step(self, x, label):
        torch = self.torch
        a = x @ self.w_in
        h = torch.where(a > 0, a, self.leak * a)
        h[0] = 1.0
        z = h.double() @ self.w_out.double()
        delta = z.clone()
        delta[label] -= 1.0
        back = self.w_out.double() @ delta
        dh = torch.where(a > 0, 1.0, self.leak).double() * back
        dh[0] = 0.0
        if self.all_plastic:
            self._write(self.w_out, self.counts_out, h.double(), delta, self.k2)
            self._write(self.w_in, self.counts_in, x.double(), dh, self.k1)
        else:  # the path: only the plastic units' synapses
            u = self.units
            w_out, c_out = self.w_out[u], self.counts_out[u]
            self._write(w_out, c_out, h[u].double(), delta, self.k2)
            self.w_out[u], self.counts_out[u] = w_out, c_out
            w_in, c_in = self.w_in[:, u], self.counts_in[:, u]
            self._write(w_in, c_in, x.double(), dh[u], self.k1)
            self.w_in[:, u], self.counts_in[:, u] = w_in, c_in

    def _write(self, w, counts, pre, post, k):
        torch = self.torch
        dw = -self.lr * torch.outer(pre, post)
        if k >= 0:
            flat = dw.abs().flatten()
            keep = torch.topk(flat, k, sorted=False).indices
            sparse = torch.zeros_like(flat)
            sparse[keep] = dw.flatten()[keep]
            dw = sparse.reshape(dw.shape)
        written = dw != 0.0
        w += dw.float()
        counts += written.int()
        self.m0 += int(written.sum())
        self.m1 += float(dw.abs().sum())

    def train(self, x, y, sample_idx):
        xt = self.torch.from_numpy(x)
        for row in sample_idx:
            self.step(xt[int(row)], int(y[row]))
        return len(sample_idx)
