"""Where a profiled training step's time goes (`step_profile.py`, `plain_gpt.plain_pytorch_loop`): the kernels
of a torch.profiler run (on a machine without a GPU, its operators) per step, each in a group."""

GROUPS = (
    ("attention", ("cudnn", "flash", "fmha", "attn")),
    ("matmul", ("gemm", "cutlass", "nvjet", "xmma", "sm90_", "cublas")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("inductor (Triton)", ("triton",)),
)


def group_of(name: str) -> str:
    low = name.lower()
    return next((group for group, keys in GROUPS if any(k in low for k in keys)), "other")


def per_step(prof, steps: int, gpu: bool, top: int) -> dict:
    """A finished profiler `prof` that recorded `steps` steps: the time of a step, per group, and its `top`
    kernels by their own time, each with its calls and milliseconds per step."""

    def self_us(event) -> float:
        return event.self_device_time_total if gpu else event.self_cpu_time_total

    events = [e for e in prof.key_averages() if self_us(e) > 0]
    groups: dict[str, float] = {}
    for e in events:
        groups[group_of(e.key)] = groups.get(group_of(e.key), 0.0) + self_us(e) / steps
    return {
        "gpu_ms_per_step": round(sum(self_us(e) for e in events) / steps / 1e3, 3),
        "groups_ms_per_step": {g: round(us / 1e3, 3) for g, us in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top_kernels": [
            {
                "name": e.key[:160],
                "calls_per_step": e.count / steps,
                "group": group_of(e.key),
                "ms_per_step": round(self_us(e) / steps / 1e3, 3),
            }
            for e in sorted(events, key=lambda e: -self_us(e))[:top]
        ],
    }
