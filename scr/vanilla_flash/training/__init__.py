"""A training run (its parameters are `vanilla_flash.config`): data (`data`, `datamodule`), precision (`precision`),
callbacks (`callbacks`), checkpoints (`checkpoints`) and the run itself (`run`)."""
