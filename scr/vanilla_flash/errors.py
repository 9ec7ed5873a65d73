"""The project's errors: one base class, one subclass per domain, each message saying what to do.

The command line prints the message of any `VanillaFlashError` and exits with status 2 (a
traceback only with ``--debug``); anything else is a bug and keeps its traceback.
"""


class VanillaFlashError(Exception):
    """Something the user can fix; the message says how."""


class ConfigError(VanillaFlashError, ValueError):
    """A parameter, a target or a precision that cannot be used here."""


class AttentionError(VanillaFlashError, RuntimeError):
    """An attention backend cannot run this call here; the message says what to do instead."""


class DataError(VanillaFlashError, RuntimeError):
    """The data cannot be had; the message says how to get it."""


class CheckpointError(VanillaFlashError, RuntimeError):
    """A checkpoint cannot be resumed; the message says why and what to do."""


class TrainingError(VanillaFlashError, RuntimeError):
    """A run cannot go on (its loss diverged); the message says what to change."""


class BuildError(VanillaFlashError, RuntimeError):
    """A build or install step failed; the message says which and where its log is."""


class FlashAttnModelError(VanillaFlashError, RuntimeError):
    """flash-attn's GPT (or one of its fused parts) is not available here; the message says why."""
