"""Getting flash-attn onto this machine: what to install (`install`), builds from source of only what is
asked for (`sources`), flash-attn 1.x's fused extensions (`fused`), and the label a build carries with
the rule of which GPU runs which code (`labels`)."""
