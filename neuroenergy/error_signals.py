"""The error signals of one sample: from the input layer's potentials, the hidden
activities, the output error (float32 of dLoss/dz) and the hidden error, from the output
weights before the sample changes them.

The output layer comes row-major (kp, n_out), as the priced kernel keeps it, or transposed
(n_out, kp), as the plain kernel keeps a dense or masked output layer for a chunk; both give
the same sums in the same order, bit for bit (``tests/test_perf_semantics.py``).
"""
import numba
import numpy as np

from hardware_models.compiled_only import compiled_only

from .kernels import _activation, _activation_slope, output_error


@numba.njit(cache=True, inline="always")
def _output_sums(h, w2, z):
    """z[o] += sum_j float64(h_j) float64(w2[j, o]), accumulated in hidden-unit order. The
    loop over the outputs vectorizes (a row of w2 at a time); ten scalar sums held in
    registers measured 1.4 x slower at 1,000 hidden units, and the same at 100."""
    kp, n_out = w2.shape
    for j in range(kp):
        hj = np.float64(h[j])
        for o in range(n_out):
            z[o] += hj * np.float64(w2[j, o])


@numba.njit(cache=True)
def _output_sums_t(h, w2t, z):
    """:func:`_output_sums` on the transpose w2t (n_out, kp): the same sums in the same
    order, each output's in its own register for ten outputs (the loop over the outputs
    would read w2t with a stride)."""
    n_out, kp = w2t.shape
    if n_out != 10:
        for j in range(kp):
            hj = np.float64(h[j])
            for o in range(n_out):
                z[o] += hj * np.float64(w2t[o, j])
        return
    z0, z1, z2, z3, z4 = z[0], z[1], z[2], z[3], z[4]
    z5, z6, z7, z8, z9 = z[5], z[6], z[7], z[8], z[9]
    for j in range(kp):
        hj = np.float64(h[j])
        z0 += hj * np.float64(w2t[0, j])
        z1 += hj * np.float64(w2t[1, j])
        z2 += hj * np.float64(w2t[2, j])
        z3 += hj * np.float64(w2t[3, j])
        z4 += hj * np.float64(w2t[4, j])
        z5 += hj * np.float64(w2t[5, j])
        z6 += hj * np.float64(w2t[6, j])
        z7 += hj * np.float64(w2t[7, j])
        z8 += hj * np.float64(w2t[8, j])
        z9 += hj * np.float64(w2t[9, j])
    z[0], z[1], z[2], z[3], z[4] = z0, z1, z2, z3, z4
    z[5], z[6], z[7], z[8], z[9] = z5, z6, z7, z8, z9


@numba.njit(cache=True)
def _hidden_error_t(w2t, post2, a, h, clamped, act_code, leak, dh, back):
    """:func:`_hidden_error` on the transpose w2t (n_out, kp): the same sums in the same
    order, an output at a time over every unit (vectorized). ``back``: float64 (kp,)."""
    n_out, kp = w2t.shape
    for j in range(kp):
        back[j] = 0.0
    for o in range(n_out):
        p = np.float64(post2[o])
        for j in range(kp):
            back[j] += np.float64(w2t[o, j]) * p
    for j in range(kp):
        dh[j] = 0.0 if clamped[j] else np.float32(
            _activation_slope(a[j], h[j], act_code, leak) * back[j])


@compiled_only(cache=True)
def _errors(xs, row, y, offset, w2, w2_rows_on, w2_t_on, clamped, act_code, leak, loss_code,
            a, h, z, delta_out, post2, dh, back):
    """From the input-layer potentials ``a``: hidden activities h, output error post2
    (float32 of dLoss/dz) and hidden error dh, from the output weights before this sample
    changes them: w2 (kp, n_out) with the flag ``w2_rows_on``, or its transpose (n_out, kp)
    with ``w2_t_on`` (``back``: float64 (kp,) scratch, read only then). The flags are 1 or
    None, one of each: numba drops the branch of a None flag, so a kernel compiles one of
    the two (a test ``is None`` of an int flag is not resolved before compiling). Returns
    False if the output is not finite."""
    kp = h.shape[0]
    n_out = z.shape[0]
    for j in range(kp):
        h[j] = np.float32(1.0) if clamped[j] else np.float32(_activation(a[j], act_code, leak))
    for o in range(n_out):
        z[o] = offset[row, o] if offset.shape[0] > 0 else 0.0
    if w2_rows_on is not None:
        _output_sums(h, w2, z)
    if w2_t_on is not None:
        _output_sums_t(h, w2, z)
    if not output_error(z, y[row], loss_code, delta_out):
        return False
    for o in range(n_out):
        post2[o] = np.float32(delta_out[o])
    if w2_rows_on is not None:
        _hidden_error(w2, post2, a, h, clamped, act_code, leak, dh)
    if w2_t_on is not None:
        _hidden_error_t(w2, post2, a, h, clamped, act_code, leak, dh, back)
    return True


@numba.njit(cache=True, inline="always")
def _hidden_error(w2, post2, a, h, clamped, act_code, leak, dh):
    """dh[j] = g'(a_j) sum_o float64(w2[j, o]) float64(post2[o]), the sum left to right;
    four units at a time, so that four independent sums are in flight."""
    kp, n_out = w2.shape
    j = 0
    while j + 4 <= kp:
        b0 = 0.0
        b1 = 0.0
        b2 = 0.0
        b3 = 0.0
        for o in range(n_out):
            p = np.float64(post2[o])
            b0 += np.float64(w2[j, o]) * p
            b1 += np.float64(w2[j + 1, o]) * p
            b2 += np.float64(w2[j + 2, o]) * p
            b3 += np.float64(w2[j + 3, o]) * p
        dh[j] = np.float32(_activation_slope(a[j], h[j], act_code, leak) * b0)
        dh[j + 1] = np.float32(_activation_slope(a[j + 1], h[j + 1], act_code, leak) * b1)
        dh[j + 2] = np.float32(_activation_slope(a[j + 2], h[j + 2], act_code, leak) * b2)
        dh[j + 3] = np.float32(_activation_slope(a[j + 3], h[j + 3], act_code, leak) * b3)
        j += 4
    while j < kp:
        back = 0.0
        for o in range(n_out):
            back += np.float64(w2[j, o]) * np.float64(post2[o])
        dh[j] = np.float32(_activation_slope(a[j], h[j], act_code, leak) * back)
        j += 1
    for j in range(kp):
        if clamped[j]:
            dh[j] = 0.0
