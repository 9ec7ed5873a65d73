"""Getting flash-attn onto this machine: what to install (`install`), builds from source of only what is
asked for (`sources`), flash-attn 1.x's fused extensions (`fused`), the label a build carries with the
rule of which GPU runs which code (`labels`), and this package's own CUDA sources compiled here (`inline`)."""
