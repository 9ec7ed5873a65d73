# %% [markdown]
# # flash-attn $version · Benchmark
#
# $colab_badge
#
# Every attention backend that runs here, first checked against an fp32 reference, then timed forward and backward;
# GPT-2 training speed per backend; plots; and the committed H100 reference to compare.
#
# $expected_gpu

# %% [markdown] lang="vi"
# ## Đo hiệu năng
#
# Mọi backend attention chạy được ở đây, kiểm tra đúng với tham chiếu fp32 trước, rồi đo thời gian xuôi và ngược; tốc độ
# huấn luyện GPT-2 theo từng backend; biểu đồ; và kết quả tham chiếu trên H100 đã lưu trong repo để so sánh.
#
# $expected_gpu_vi

# %% preamble=true
# Stands in for the parameters cell and the two set-up cells, which notebooks/build.py writes here.
from vanilla_flash import notebook

target = fa1_source = fa1_archs = fa1_extensions = train = benchmark = None

# %% [markdown]
# ## 1. Attention kernels

# %% [markdown] lang="vi"
# ## 1. Các kernel attention

# %% tags=["nbval-ignore-output"]
import json
from pathlib import Path

from vanilla_flash import bench_attention, bench_training, report

out = Path(train["run_dir"]).parent / "bench"
out.mkdir(parents=True, exist_ok=True)
result = bench_attention.run(
    seq_lens=benchmark["seq_lens"],
    head_dims=benchmark["head_dims"],
    dtypes=benchmark["dtypes"],
    tokens=benchmark["tokens"],
    hidden=benchmark["hidden"],
    repeats=benchmark["repeats"],
    memory_seq_lens=benchmark["seq_lens"],
)

# %% tags=["nbval-ignore-output"]
(out / "attention.json").write_text(json.dumps(result, indent=2))
print(bench_attention.summary(result))
for path in report.attention_plots(result, out):
    notebook.show(path)
memory = report.memory_plot(result, out)
if memory is not None:
    notebook.show(memory)

# %% [markdown]
# ## 2. Training speed per backend

# %% [markdown] lang="vi"
# ## 2. Tốc độ huấn luyện theo backend

# %% tags=["nbval-ignore-output"]
rows = bench_training.train_grid(
    benchmark["train_size"],
    seq_lens=benchmark["train_seq_lens"],
    tokens_per_step=benchmark["train_tokens"],
    steps=benchmark["train_steps"],
)
print(report.train_table({"rows": rows}))

# %% [markdown]
# ## 3. The H100 reference in the repository
#
# Measured by this project on one H100 (files under `results/h100/`, with their environment).

# %% [markdown] lang="vi"
# ## 3. Kết quả tham chiếu trên H100 trong repo
#
# Dự án đã đo trên một H100 (các tệp trong `results/h100/`, kèm môi trường đo).

# %%
runs = sorted(Path("results/h100/train_124m").glob("*/summary.json"))
print(report.runs_table([p.parent for p in runs]))
for name in ("b16", "b32"):
    print(report.overhead_table(json.loads(Path(f"results/h100/overhead/{name}.json").read_text())))
print(report.train_table(json.loads(Path("results/h100/train_bench.json").read_text())))

# %% tags=["nbval-ignore-output"]
notebook.show("scr/img/train_loss_curves.png")
notebook.show("scr/img/attention_tflops_bfloat16.png")
