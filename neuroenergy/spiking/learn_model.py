"""The Brian2 objects of spiking training (and of spiking evaluation of a trained network).

Schedule at every presentation boundary t = k T (all before image k moves any neuron):

1. ``start``: the outputs compute err = valid (target - n_spk / steps) for image k - 1, and
   every membrane potential is set to 0;
2. ``groups``: Brian's summed-variable updater sets fb_j = sum_o w_jo err_o (it runs before
   the hidden group's update, order -1);
3. ``after_groups``, order 0: both synapse groups apply their gated updates and meter them;
4. ``after_groups``, order 1: the spike counters restart.

Row k of the target ``TimedArray`` holds the target of image k - 1 and row 0 is invalid, so
step 1 at t = 0 changes nothing; one extra step after the last image applies its update.
"""
from __future__ import annotations

import time

import numpy as np

from ._backend import Session
from .convert import dense_pairs, pad_rows, table_rows

N_OUT = 10
SPIKE_RESET = "v -= 1\nn_spk += 1"
METERED_UPDATE = """
dw = {eta} * n_spk_pre * inv_steps * {error}
take = int(plastic > 0.5) * int(abs(dw) > theta) * int(dw != 0)
w += take * dw
m0 += take
m1 += take * abs(dw)
m1pot += take * int(dw > 0) * dw
"""
SYNAPSE_MODEL = """
w : 1
plastic : 1 (constant)
theta : 1 (shared)
m0 : integer
m1 : 1
m1pot : 1
"""


class LearningNet:
    """Input, hidden and output neurons with plastic (``learn=True``) or fixed synapses.

    Parameters
    ----------
    session : the Brian2 session (target, seed)
    rates : float64 (n, 785), input rates in spikes per step per presentation
    targets : float64 (n, 10), target output rate per presentation (learning only)
    w_in, w_out : float (785, hidden), (hidden, 10) initial weights
    plastic_in, plastic_out : float (785, hidden), (hidden, 10) gates (1 plastic, 0 frozen)
    config : LearnConfig (timing, input coding, learning rates)
    learn : False marks every presentation invalid (evaluation: no error, no update)
    active : float (n,), 0 for padding presentations (no input, no spikes, no update)
    record_weights : also record the weights after every boundary (hardware pricing)
    """

    def __init__(self, session: Session, rates, targets, w_in, w_out, plastic_in, plastic_out,
                 config, learn=True, record_weights=False, active=None):
        b2 = session.b2
        t0 = time.perf_counter()
        self.session, self.config = session, config
        n, n_in = rates.shape
        hidden = w_in.shape[1]
        self.n_images, self.hidden = n, hidden
        dt = config.dt_ms * b2.ms
        self.period = config.duration_ms * b2.ms
        self.dt = dt
        inputs = self.table_values(rates, targets, active, learn)
        self.ta_rate = b2.TimedArray(inputs["rate"], dt=self.period, name="ta_rate")
        self.ta_active = b2.TimedArray(inputs["active"], dt=self.period, name="ta_active")
        self.ta_target = b2.TimedArray(inputs["target"], dt=self.period, name="ta_target")
        self.ta_valid = b2.TimedArray(inputs["valid"], dt=self.period, name="ta_valid")
        ns = {"ta_rate": self.ta_rate, "ta_active": self.ta_active, "ta_target": self.ta_target,
              "ta_valid": self.ta_valid, "inv_steps": 1.0 / config.steps, "eta_in": config.lr,
              "eta_out": config.lr_output}
        common = dict(dt=dt, namespace=ns)
        boundary = dict(dt=self.period, when="start", order=0)
        if config.input == "regular":
            self.inp = b2.NeuronGroup(n_in, "v : 1\nn_spk : integer", threshold="v >= 1",
                                      reset=SPIKE_RESET, name="inp", **common)
            self.inp.run_regularly("v += ta_rate(t, i) * ta_active(t)", when="groups",
                                   name="inp_drive")
            self.inp.run_regularly("v = 0", name="inp_boundary", **boundary)
        else:
            self.inp = b2.NeuronGroup(n_in, "n_spk : integer",
                                      threshold="rand() < ta_rate(t, i) * ta_active(t)",
                                      reset="n_spk += 1", name="inp", **common)
        # unit 0 is the output bias: driven by 1 per step it fires on every step
        self.hid = b2.NeuronGroup(hidden, "v : 1\nI_c : 1 (constant)\nn_spk : integer\n"
                                  "fb : 1", threshold="v >= 1", reset=SPIKE_RESET,
                                  name="hid", **common)
        self.hid.I_c[0] = 1.0
        self.hid.run_regularly("v += I_c * ta_active(t)", when="groups", name="hid_drive")
        self.hid.run_regularly("v = 0", name="hid_boundary", **boundary)
        out_eqs = "v : 1\nn_spk : integer\nerr : 1"
        self.out = b2.NeuronGroup(N_OUT, out_eqs, threshold="v >= 1", reset=SPIKE_RESET,
                                  name="out", **common)
        # the read-out is taken before the error and the reset (order -1)
        self.mon_out = b2.StateMonitor(self.out, ["n_spk", "v"], record=True, dt=self.period,
                                       when="start", order=-1, name="mon_out")
        self.out.run_regularly("err = ta_valid(t) * (ta_target(t, i) - n_spk * inv_steps)\n"
                               "v = 0\nn_spk = 0", name="out_boundary", **boundary)
        model_out = SYNAPSE_MODEL + "fb_pre = w * err_post : 1 (summed)\n"
        self.s_in = b2.Synapses(self.inp, self.hid, SYNAPSE_MODEL, on_pre="v_post += w",
                                name="s_in", **common)
        # explicit (pre, post) lists, presynaptic-major: the synapse order is known on
        # every target (standalone cannot be asked before it has run); the bias unit (0)
        # has no input synapses
        self.idx_in = dense_pairs(n_in, hidden, first_post=1)
        self.idx_out = dense_pairs(hidden, N_OUT)
        self.s_in.connect(i=self.idx_in[0], j=self.idx_in[1])
        self.s_out = b2.Synapses(self.hid, self.out, model_out, on_pre="v_post += w",
                                 name="s_out", **common)
        self.s_out.connect(i=self.idx_out[0], j=self.idx_out[1])
        objects = [self.inp, self.hid, self.out, self.s_in, self.s_out, self.mon_out]
        update = dict(dt=self.period, when="after_groups", order=0)
        self.s_out.run_regularly(METERED_UPDATE.format(eta="eta_out", error="err_post"),
                                 name="s_out_update", **update)
        self.s_in.run_regularly(
            METERED_UPDATE.format(eta="eta_in", error="fb_post * int(n_spk_post > 0)"),
            name="s_in_update", **update)
        for group in (self.inp, self.hid):
            group.run_regularly("n_spk = 0", dt=self.period, when="after_groups", order=1,
                                name=group.name + "_restart")
        self.mon_w = None
        if record_weights:
            self.mon_w = [b2.StateMonitor(s, "w", record=True, dt=self.period,
                                          when="after_groups", order=2, name=s.name + "_w")
                          for s in (self.s_in, self.s_out)]
            objects += self.mon_w
        self.net = b2.Network(*objects)
        self.set_weights(w_in, w_out)
        self.s_in.plastic[:] = np.asarray(plastic_in, np.float64)[self.idx_in]
        self.s_out.plastic[:] = np.asarray(plastic_out, np.float64)[self.idx_out]
        self.s_in.theta = 0.0
        self.s_out.theta = 0.0
        if session.standalone:
            self.net.run(n * self.period + dt)
            session.build()
        else:
            self.net.run(0 * b2.ms, namespace={})  # generate and compile the code now
        self.setup_seconds = time.perf_counter() - t0
        session.setup_seconds += self.setup_seconds

    # ------------------------------------------------------------------------- values
    @staticmethod
    def table_values(rates, targets, active=None, learn=True) -> dict:
        """TimedArray contents: rates and activity per presentation (zero rows appended, see
        :func:`table_rows`), targets and validity shifted by one row (row k belongs to
        presentation k - 1).
        ``learn=False`` marks every presentation invalid: no error, no update."""
        n = len(rates)
        rows = table_rows(n)
        active = np.ones(n) if active is None else np.asarray(active, np.float64)
        return {"rate": pad_rows(rates, rows), "active": pad_rows(active, rows),
                "target": pad_rows(targets, rows, front=1),
                "valid": pad_rows(active * float(learn), rows, front=1)}

    def set_weights(self, w_in, w_out) -> None:
        self.s_in.w[:] = np.asarray(w_in, np.float64)[self.idx_in]
        self.s_out.w[:] = np.asarray(w_out, np.float64)[self.idx_out]

    def weights(self, w_in_template, w_out_template):
        """Full weight matrices: the templates with the synapses' current values."""
        w_in = np.array(w_in_template, np.float64)
        w_out = np.array(w_out_template, np.float64)
        w_in[self.idx_in] = np.array(self.s_in.w[:], copy=True)
        w_out[self.idx_out] = np.array(self.s_out.w[:], copy=True)
        return w_in, w_out

    def meters(self) -> dict:
        """Per-synapse accumulators (since build, or since the run for standalone)."""
        return {name: (np.array(getattr(self.s_in, name)[:], copy=True),
                       np.array(getattr(self.s_out, name)[:], copy=True))
                for name in ("m0", "m1", "m1pot")}

    def reset_meters(self) -> None:
        for s in (self.s_in, self.s_out):
            s.m0 = 0
            s.m1 = 0.0
            s.m1pot = 0.0

    # ------------------------------------------------------------------------- running
    def run_runtime(self, n_presentations: int, last: bool) -> float:
        """Continue the runtime simulation by ``n_presentations`` (one ``run()``); ``last``
        adds the step that applies the final update. Returns the wall time."""
        t0 = time.perf_counter()
        duration = n_presentations * self.period + (self.dt if last else 0 * self.dt)
        self.net.run(duration, namespace={})
        return time.perf_counter() - t0

    def run_standalone(self, rates, targets, active, w_in, w_out, theta, learn=True) -> float:
        """Re-run the compiled binary on a new chunk (same size) with new weights;
        ``learn=False`` evaluates (no error, no update)."""
        t0 = time.perf_counter()
        values = self.table_values(rates, targets, active, learn)
        args = {self.ta_rate: values["rate"], self.ta_active: values["active"],
                self.ta_target: values["target"], self.ta_valid: values["valid"],
                self.s_in.w: np.asarray(w_in, np.float64)[self.idx_in],
                self.s_out.w: np.asarray(w_out, np.float64)[self.idx_out],
                self.s_in.theta: float(theta[0]), self.s_out.theta: float(theta[1])}
        self.session.run_standalone(args)
        return time.perf_counter() - t0

    def readout(self):
        """Output spike counts and potentials at the end of each presentation recorded so
        far: two arrays (n_records - 1, 10) (the record at t = 0 is dropped)."""
        counts = np.array(self.mon_out.n_spk, copy=True).T[1:]
        v = np.array(self.mon_out.v, copy=True).T[1:]
        return counts, v

    def weight_history(self):
        """Weights after every boundary (hardware pricing): two arrays (n_records, n_syn)."""
        return [np.array(m.w, copy=True).T for m in self.mon_w]
