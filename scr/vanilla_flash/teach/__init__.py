"""FlashAttention written from scratch, step by step, as the tutorial's fifth notebook teaches it: the
steps in PyTorch and the first CUDA kernel (`from_scratch`), and the ladder of CUDA kernels that climbs
from it to tensor cores (`ladder`, its sources in `kernels/`)."""
