"""Attention: one registry of backends and one calling convention (`registry`), the backends it holds
(`backends`: the SDPA family, the flash-attn libraries of `flash_attn`, and `from_scratch`, notebook 05's
own kernel), and the masks transformers builds for them (`masks`). The names below are the registry's
public face: ``from vanilla_flash import attention; attention.attend("sdpa", q, k, v)``."""

from vanilla_flash.attention import backends  # noqa: F401  (registers every backend)
from vanilla_flash.attention.registry import (
    Backend,
    attend,
    check_name,
    get,
    names,
    pick,
    preference,
    register,
    why_not,
)

__all__ = ["Backend", "attend", "check_name", "get", "names", "pick", "preference", "register", "why_not"]
