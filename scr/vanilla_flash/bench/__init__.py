"""Measuring: every backend against a float32 reference (`check`), GPU timing (`timing`), the attention
kernel benchmarks (`attention`) and the training benchmarks (`training`)."""
