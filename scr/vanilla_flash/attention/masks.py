"""The masks transformers builds for this project's attention backends.

transformers asks each attention implementation's mask builder (`AttentionMaskInterface`) for the
mask its forward function receives; `vanilla_flash.attention.registry.register` gives the SDPA backends
`causal_or_sdpa_mask` and the flash-attn backends transformers' `flash_attention_mask` (a 2-D
padding mask, or None).
"""

from __future__ import annotations


def causal_or_sdpa_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    mask_function=None,
    attention_mask=None,
    local_size=None,
    allow_is_causal_skip=True,
    **kwargs,
):
    """The mask builder of our SDPA backends: no mask at all where plain causal attention is meant
    (no padding, no window, every query against every earlier key, or one new query against all the
    keys), so that SDPA runs `is_causal`; otherwise transformers' own `sdpa_mask`. transformers 5.17
    builds a boolean (batch, 1, seq, seq) mask under torch.compile even without padding, which SDPA's
    kernels then read (and the flash kernel refuses); later versions skip it as this does."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    plain_causal = mask_function is None or mask_function is causal_mask_function
    whole = q_length == kv_length and q_offset == 0 and kv_offset == 0
    if (
        allow_is_causal_skip
        and plain_causal
        and attention_mask is None
        and local_size is None
        and (whole or q_length == 1)
    ):
        return None
    if mask_function is not None:
        kwargs["mask_function"] = mask_function
    return sdpa_mask(
        batch_size,
        q_length,
        kv_length,
        q_offset,
        kv_offset,
        attention_mask=attention_mask,
        local_size=local_size,
        allow_is_causal_skip=allow_is_causal_skip,
        **kwargs,
    )
