"""A training run: its parameters (`config`), data (`data`, `datamodule`), precision (`precision`),
callbacks (`callbacks`), checkpoints (`checkpoints`) and the run itself (`run`)."""
