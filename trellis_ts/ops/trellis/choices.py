"""The op's choices and the defaults the forecaster uses, torch-free: the command line checks an
option against them before it loads torch, and the op, the layer and `TrellisConfig` read them
from here."""

PHIS = ("identity", "silu", "tanh")  # the compression nonlinearity φ
BETWEEN = ("ln_silu", "l2_silu", "softmax")  # the map f between the two passes
DEFAULT_PHI = "identity"  # a gated delta rule: chunks are exact, chunk size is only speed
DEFAULT_BETWEEN = "ln_silu"
DEFAULT_CHUNK_SIZE = 64
