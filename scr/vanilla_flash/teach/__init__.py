"""FlashAttention written from scratch, step by step, as the tutorial's fifth notebook teaches it."""
