"""Integer codes and spec-vector slots shared by the general kernel and the rule objects.

The general kernel takes two small vectors instead of a long argument list: ``ispec`` (int64)
and ``fspec`` (float64). The ``I_*`` / ``F_*`` constants below index them; the ``UNITS_*``,
``WRITE_*``, ``BUF_*`` and ``SCOPE_*`` constants are the values the slots take. Plain Python,
no imports: both the foundation (kernels) and the domain (rules) read it.
"""

# which hidden units are plastic on a sample
UNITS_ALL = 0        # every unit
UNITS_FIXED = 1      # a fixed set chosen once (path)
UNITS_ROTATING = 2   # a block of k units of a fixed permutation, moving every R samples
UNITS_ERROR = 3      # the k units with the largest |delta| on this sample
UNITS_RANDOM = 4     # k units drawn uniformly on every sample

# which of the plastic synapses are written on a sample (layers without a buffer)
WRITE_ALL = 0        # every nonzero update
WRITE_TOP = 1        # largest fraction p of |dw| in the layer
WRITE_TOP_NEURON = 2  # largest fraction p of |dw| of each postsynaptic neuron
WRITE_SMALLEST = 3   # smallest fraction p of the nonzero |dw| (control)
WRITE_LARGEST_W = 4  # the fraction p of plastic synapses with the largest |w| (control)
WRITE_MASK = 5       # a fixed random mask of synapses (control)

# update buffers
BUF_NONE = 0         # updates are written (or discarded) on the sample
BUF_HIDDEN = 1       # accumulate-and-write: the buffer is not part of the weight
BUF_VISIBLE = 2      # synaptic caching: weight = persistent + transient

# what a buffer writes (consolidates) on a sample
SCOPE_SYNAPSE = 0    # each synapse whose |buffer| exceeds theta
SCOPE_NEURON = 1     # every synapse of a postsynaptic neuron one of whose synapses exceeds theta
SCOPE_LAYER = 2      # the whole layer when one synapse exceeds theta
SCOPE_TOP = 3        # the largest fraction p of |buffer| in the layer

# ispec slots
I_ACT = 0
I_LOSS = 1
I_UNITS = 2
I_WRITE = 3
I_BUFFER = 4
I_SCOPE = 5
I_RESTRICT_OUT = 6   # 1: a synapse needs both ends plastic (a path); 0: only its target
I_READOUT_ONLY = 7   # 1: only the last layer learns
I_PERIOD = 8         # rotating path: samples between moves
I_IN_LOOP = 9        # index of the hardware preset holding the weights, or -1
N_ISPEC = 10

# fspec slots
F_LEAK = 0
F_ALPHA = 1          # exponent of the extra energy sum, -1 for none
F_THETA = 2          # consolidation threshold (weight units)
F_DECAY = 3          # transient kept per sample, exp(-1 / tau); 1 without decay
F_C = 4              # maintenance cost per unit |buffer| per sample
F_B = 5              # cost per unit change of the buffer
F_LAZY = 6           # update only if z[label] - max_other z <= this margin; -1: always
N_FSPEC = 7

# buf_f columns (float64 (n_layers, N_BUF_F)): buffer costs in M1 units
BF_MAINTENANCE = 0
BF_CHANGE = 1
N_BUF_F = 2

# lazy_i slots (int64 (2,)): samples that updated, samples skipped as already learned
LZ_UPDATED = 0
LZ_SKIPPED = 1
