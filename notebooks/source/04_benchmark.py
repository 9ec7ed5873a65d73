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
# # flash-attn $version · Đo hiệu năng
#
# $colab_badge
#
# Mọi backend attention chạy được ở đây được kiểm tra độ đúng với tham chiếu fp32 trước, rồi mới đo thời gian lượt
# xuôi và lượt ngược; sau đó là tốc độ huấn luyện GPT-2 theo từng backend, các biểu đồ, và kết quả tham chiếu trên
# H100 đã lưu trong repo để bạn so sánh.
#
# $expected_gpu_vi

# %% preamble=true
# Stands in for the parameters cell and the two set-up cells, which notebooks/build.py writes here.
from vanilla_flash import notebook

target = fa1_source = fa1_archs = fa1_head_dims = fa1_extensions = train = benchmark = None
fa2_source = fa2_archs = fa2_head_dims = None

# %% [markdown]
# ## 1. Attention kernels
#
# Every backend that runs here is first checked against attention computed in fp32 on the same inputs (a wrong one is
# recorded and not timed), then timed forward and backward. On a GPU the table gives TFLOP/s and peak memory, and the
# plots show them against the sequence length; on a CPU the sizes are tiny and the times measure Python, so there the
# table is a correctness check and nothing is plotted.

# %% [markdown] lang="vi"
# ## 1. Các kernel attention
#
# Mỗi backend chạy được ở đây trước hết được so với attention tính bằng fp32 trên cùng đầu vào (backend nào sai thì
# được ghi lại và không đo thời gian), rồi mới đo thời gian lượt xuôi và lượt ngược. Trên GPU, bảng cho TFLOP/s và bộ
# nhớ đỉnh, còn biểu đồ vẽ chúng theo độ dài chuỗi; trên CPU, kích thước rất nhỏ và thời gian chủ yếu tốn cho Python,
# nên ở đó bảng chỉ dùng để kiểm tra độ đúng và không vẽ gì.

# %% tags=["nbval-ignore-output"]
import json
from pathlib import Path

from vanilla_flash.bench import attention as bench_attention
from vanilla_flash.bench import training as bench_training
from vanilla_flash.results import report

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
notebook.show_markdown(bench_attention.points_markdown(result))
print(bench_attention.summary(result, points=False))
if result["environment"]["machine"]["device"] == "cuda":
    for path in [*report.attention_plots(result, out), report.memory_plot(result, out)]:
        notebook.show(path)

# %% [markdown]
# ## 2. Training speed per backend
#
# A few GPT-2 training steps per backend and sequence length in a plain PyTorch loop: tokens/s, step time, MFU (the
# share of the GPU's peak that the model's FLOPs use) and peak memory. MFU and memory are GPU measurements: on a CPU
# they show as `-`.

# %% [markdown] lang="vi"
# ## 2. Tốc độ huấn luyện theo backend
#
# Vài bước huấn luyện GPT-2 cho mỗi backend và mỗi độ dài chuỗi, trong một vòng lặp PyTorch thuần: token/s, thời gian
# mỗi bước, MFU (phần FLOP/s đỉnh của GPU mà phép tính của mô hình thực sự dùng) và bộ nhớ đỉnh. MFU và bộ nhớ chỉ đo
# được trên GPU: trên CPU chúng hiện là `-`.

# %% tags=["nbval-ignore-output"]
rows = bench_training.train_grid(
    benchmark["train_size"],
    seq_lens=benchmark["train_seq_lens"],
    tokens_per_step=benchmark["train_tokens"],
    steps=benchmark["train_steps"],
    dtype=benchmark["dtypes"][0],
)
(out / "train_bench.json").write_text(json.dumps({"rows": rows}, indent=2))
notebook.show_markdown(report.train_table({"rows": rows}))

# %% [markdown]
# ## 3. The H100 reference in the repository
#
# Measured by this project on one H100 (files under `results/h100/`, with their environment).

# %% [markdown] lang="vi"
# ## 3. Kết quả tham chiếu trên H100 trong repo
#
# Dưới đây là những gì dự án đã đo trên một H100 (các tệp trong `results/h100/`, kèm môi trường đo).

# %%
runs = sorted(Path("results/h100/train_124m").glob("*/summary.json"))
notebook.show_markdown(report.runs_table([p.parent for p in runs]))
for name in ("b16", "b32"):
    notebook.show_markdown(report.overhead_table(json.loads(Path(f"results/h100/overhead/{name}.json").read_text())))
notebook.show_markdown(report.train_table(json.loads(Path("results/h100/train_bench.json").read_text())))

# %% tags=["nbval-ignore-output"]
notebook.show("scr/img/train_loss_curves.png")
notebook.show("scr/img/attention_tflops_bfloat16.png")
