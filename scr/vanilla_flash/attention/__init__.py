"""Attention: one registry of backends and one calling convention (`registry`), the SDPA and
flash-attn families behind it (`flash_attn` for the flash-attn libraries), and the masks transformers
builds for them (`masks`). The names below are the registry's public face: ``from vanilla_flash
import attention; attention.attend("sdpa", q, k, v)``."""

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
