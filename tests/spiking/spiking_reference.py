"""Slow, obviously correct references for the spiking bridge (tests only)."""
import numpy as np


def simulate_converted(conv, x, steps, readout_steps):
    """Integrate-and-fire simulation of a converted network with analog input, image by image
    and step by step, in Brian2's order within a time step: state updates (v += drive), all
    thresholds (v >= 1), synaptic propagation (hidden spikes into the outputs, in channel
    order), resets by subtraction.

    Returns counts, v (n_readouts, n, 10) and hidden spike counts (n_readouts, n).
    """
    drive = conv.drive(x)
    n = len(x)
    r = len(readout_steps)
    counts = np.zeros((r, n, 10), np.int64)
    v_read = np.zeros((r, n, 10))
    hidden = np.zeros((r, n), np.int64)
    for k in range(n):
        v_h = np.zeros(conv.n_channels)
        v_o = np.zeros(10)
        c_o = np.zeros(10, np.int64)
        c_h = 0
        for s in range(1, steps + 1):
            v_h = v_h + drive[k]
            v_o = v_o + conv.b_out
            spk_h = np.flatnonzero(v_h >= 1)
            spk_o = v_o >= 1
            for c in spk_h:
                v_o = v_o + conv.w_out[c]
            v_h[spk_h] -= 1
            v_o[spk_o] -= 1
            c_o += spk_o
            c_h += len(spk_h)
            if s in readout_steps:
                j = readout_steps.index(s)
                counts[j, k], v_read[j, k], hidden[j, k] = c_o, v_o, c_h
    return counts, v_read, hidden
