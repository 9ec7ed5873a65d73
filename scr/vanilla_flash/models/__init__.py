"""GPT-2, three ways: transformers' by name (`gpt2`), a compact one for speed (`vanilla`, with the
chunked loss's Triton kernel `loss_kernel`), and flash-attn's own (`flash_attn_gpt`); `flops` counts
their parameters and FLOPs."""
