# %% [markdown]
# # flash-attn $version · FlashAttention from scratch
#
# $colab_badge
#
# The other notebooks install, build and measure the library. This one builds the algorithm itself, step by step, and
# checks each step against PyTorch: what naive attention costs, the online softmax, the tiled forward pass, the backward
# pass by recomputation, and finally the same forward pass as a CUDA kernel of your own, compiled here for this GPU and
# timed against the library. Steps 1 to 4 run on any machine; step 5 needs a GPU.
#
# $expected_gpu

# %% [markdown] lang="vi"
# ## FlashAttention từ con số không
#
# Các notebook khác cài đặt, biên dịch và đo thư viện. Notebook này tự dựng lại thuật toán, từng bước, và kiểm tra mỗi
# bước với PyTorch: attention ngây thơ tốn gì, softmax trực tuyến (online softmax), lượt xuôi theo từng ô (tile), lượt
# ngược bằng cách tính lại, và cuối cùng chính lượt xuôi ấy viết thành một kernel CUDA của riêng bạn, biên dịch ngay tại
# đây cho GPU này và đo thời gian so với thư viện. Bước 1 đến 4 chạy trên mọi máy; bước 5 cần GPU.
#
# $expected_gpu_vi

# %% preamble=true
# Stands in for the parameters cell and the two set-up cells, which notebooks/build.py writes here.
from vanilla_flash import notebook

target = fa1_source = fa1_archs = fa1_head_dims = fa1_extensions = train = benchmark = None
fa2_source = fa2_archs = fa2_head_dims = None

# %%
from pathlib import Path

import torch
import torch.nn.functional as F
from vanilla_flash.teach import from_scratch as fs

torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"
out = Path(train["run_dir"]).parent / "from_scratch"
out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Naive attention and what it costs
#
# Attention is softmax(QKᵀ/√d)·V. Written as it reads, it builds the **score matrix** S = QKᵀ: one number per pair of
# positions, S × S per head. Its memory grows with the square of the sequence length; the cell below measures the score
# tensor's real storage (and, on a GPU, the peak memory naive attention and PyTorch's fused kernel add).

# %% [markdown] lang="vi"
# ## 1. Attention ngây thơ và cái giá của nó
#
# Attention là softmax(QKᵀ/√d)·V. Viết đúng như công thức, nó tạo ra **ma trận điểm** S = QKᵀ: mỗi cặp vị trí một con
# số, tức S × S cho mỗi head. Bộ nhớ của nó tăng theo bình phương độ dài chuỗi; ô dưới đây đo dung lượng thật của tensor
# điểm (và trên GPU, bộ nhớ đỉnh mà attention ngây thơ và kernel hợp nhất của PyTorch dùng thêm).

# %%
notebook.show_source(fs.naive_attention)

# %% tags=["nbval-ignore-output"]
seq_lens = [256, 512, 1024, 2048] + ([4096, 8192] if device == "cuda" else [])
memory = fs.score_memory(seq_lens, device=device)
for r in memory:
    peaks = f", naive adds {r['naive_peak_mib']:.0f} MiB, SDPA {r['sdpa_peak_mib']:.0f}" if "sdpa_peak_mib" in r else ""
    print(f"seq {r['seq']:>5}: scores {r['score_bytes'] / 2**20:8.1f} MiB (1 x 12 heads){peaks}")
notebook.show(fs.memory_plot(memory, out / "memory.png"))

# %% [markdown]
# Memory is not the only cost: the time goes into **moving bytes** between the GPU's main memory (HBM) and its chips.
# Naive attention writes S to HBM, reads it back for the softmax, writes P, reads P again for P·V: the FlashAttention
# paper counts Θ(Nd + N²) accesses for it, against Θ(N²d²/M) for the tiled algorithm below, with M the on-chip memory.

# %% [markdown] lang="vi"
# Bộ nhớ không phải cái giá duy nhất: thời gian tốn vào việc **chuyển byte** giữa bộ nhớ chính của GPU (HBM) và chip.
# Attention ngây thơ ghi S ra HBM, đọc lại để tính softmax, ghi P, rồi đọc P lần nữa để nhân với V: bài báo
# FlashAttention đếm Θ(Nd + N²) lần truy cập cho cách này, so với Θ(N²d²/M) cho thuật toán theo ô bên dưới, với M là bộ
# nhớ trên chip.

# %% [markdown]
# ## 2. Online softmax
#
# The trick that makes tiling possible: softmax over a row seen **a block at a time**. Keep a running maximum m and a
# running sum l of exp(x − m); when a block raises the maximum, rescale the sum by exp(m_old − m_new). Nothing about the
# row needs to be kept but these two numbers.

# %% [markdown] lang="vi"
# ## 2. Softmax trực tuyến
#
# Mẹo giúp chia ô được: tính softmax trên một hàng mà **mỗi lần chỉ thấy một khối**. Giữ giá trị lớn nhất m và tổng l
# của exp(x − m) tích lũy dần; khi một khối làm m tăng lên, nhân lại tổng với exp(m_cũ − m_mới). Ngoài hai con số này,
# không cần giữ gì khác của hàng.

# %%
notebook.show_source(fs.online_softmax)
x = torch.randn(4, 1000) * 5
for block in (1, 64, 1000):
    same = torch.allclose(fs.online_softmax(x, block), torch.softmax(x, -1))
    print(f"block {block:>4}: same as torch.softmax: {same}")

# %% [markdown]
# ## 3. The tiled forward pass
#
# FlashAttention-2's loop order: for each tile of queries (kept on chip), walk over the tiles of keys and values; each
# tile's scores exist only on chip, the online softmax folds them into a running output. The output and one number per
# row, the log-sum-exp, are all that is written back. Block sizes are parameters; the function also counts the bytes it
# moves, as a GPU kernel would.

# %% [markdown] lang="vi"
# ## 3. Lượt xuôi theo từng ô
#
# Thứ tự vòng lặp của FlashAttention-2: với mỗi ô truy vấn (giữ trên chip), đi qua lần lượt các ô khóa và giá trị; điểm
# của mỗi ô chỉ tồn tại trên chip, softmax trực tuyến gộp chúng vào một đầu ra tích lũy. Chỉ đầu ra và một số cho mỗi
# hàng, log-sum-exp, được ghi lại. Kích thước khối là tham số; hàm cũng đếm số byte nó chuyển, như một kernel GPU sẽ
# làm.

# %%
notebook.show_source(fs.tiled_forward)

# %%
q, k, v = (torch.randn(2, 4, 300, 64) for _ in range(3))
for causal in (False, True):
    for block_q, block_k in ((64, 64), (32, 128), (100, 7)):
        o, lse, traffic = fs.tiled_forward(q, k, v, block_q, block_k, causal=causal)
        same = torch.allclose(o, F.scaled_dot_product_attention(q, k, v, is_causal=causal), atol=1e-5)
        print(f"causal={causal!s:<5} tiles {block_q:>3} x {block_k:<3}: same as SDPA: {same}")

# %% [markdown]
# The bytes: counted by the function for short sequences (crosses), and the formulas for long ones. With tiles of
# 64 queries and head dim 64 the tiled pass moves about half as much; with 256 queries per tile, about eight times less.
# That is why the tile should be as large as the chip's fast memory allows.

# %% [markdown] lang="vi"
# Số byte: hàm tự đếm với chuỗi ngắn (dấu x), và theo công thức với chuỗi dài. Với ô 64 truy vấn và head dim 64, cách
# chia ô chuyển khoảng một nửa; với 256 truy vấn mỗi ô, ít hơn khoảng tám lần. Vì thế ô càng lớn càng tốt, trong giới
# hạn bộ nhớ nhanh trên chip.

# %%
counted = {}
for n in (256, 512, 1024):
    qn, kn, vn = (torch.randn(1, 1, n, 64) for _ in range(3))
    counted[n] = fs.tiled_forward(qn, kn, vn, 64, 64)[2].total
    print(f"N={n:>5}: counted {counted[n]:>9} bytes, formula {fs.tiled_bytes(n, 64, 64):>9}, "
          f"naive {fs.naive_bytes(n, 64):>9}")  # fmt: skip

# %% tags=["nbval-ignore-output"]
long = [256, 512, 1024, 2048, 4096, 8192, 16384]
notebook.show(fs.traffic_plot(long, 64, (64, 128, 256), out / "traffic.png", counted))

# %% [markdown]
# ## 4. The backward pass, by recomputation
#
# Training needs gradients, and the naive backward pass reads the stored probabilities P (S × S again). FlashAttention
# keeps only the output O and the log-sum-exp, and **recomputes** each tile's P = exp(QKᵀ/√d − lse) when it needs it:
# more arithmetic, far less memory traffic. With D = rowsum(dO ∘ O), the softmax's gradient is dS = P ∘ (dP − D).

# %% [markdown] lang="vi"
# ## 4. Lượt ngược, bằng cách tính lại
#
# Huấn luyện cần gradient, và lượt ngược ngây thơ phải đọc lại ma trận xác suất P đã lưu (lại S × S). FlashAttention chỉ
# giữ đầu ra O và log-sum-exp, rồi **tính lại** P = exp(QKᵀ/√d − lse) của từng ô khi cần: tính toán nhiều hơn, nhưng
# chuyển dữ liệu ít hơn hẳn. Với D = rowsum(dO ∘ O), gradient của softmax là dS = P ∘ (dP − D).

# %%
notebook.show_source(fs.tiled_backward)

# %%
qg, kg, vg = (torch.randn(2, 4, 200, 64, requires_grad=True) for _ in range(3))
grad_out = torch.randn(2, 4, 200, 64)
fs.naive_attention(qg, kg, vg, causal=True).backward(grad_out)
o, lse, _ = fs.tiled_forward(qg.detach(), kg.detach(), vg.detach(), 64, 64, causal=True)
dq, dk, dv = fs.tiled_backward(qg.detach(), kg.detach(), vg.detach(), o, lse, grad_out, 64, 64, causal=True)
for name, mine, theirs in (("dQ", dq, qg.grad), ("dK", dk, kg.grad), ("dV", dv, vg.grad)):
    print(f"{name}: same as autograd of naive attention: {torch.allclose(mine, theirs, atol=1e-4)}")

# %% [markdown]
# ## 5. Your own GPU kernel
#
# The same forward pass in CUDA: one thread block per (batch × head, tile of 64 queries), one thread per query row,
# holding its query, running maximum, running sum and output row in float32 registers; each tile of 32 keys and values
# is loaded into shared memory once by the whole block and read from there by every thread. fp16 in and out. It is
# compiled right here with `torch.utils.cpp_extension.load_inline`, for this GPU's architecture (on a T4, sm75), then
# checked against an fp32 reference and the installed library, and timed against naive PyTorch attention and the
# library. No Triton: it breaks on a T4 with Colab's Triton.

# %% [markdown] lang="vi"
# ## 5. Kernel GPU của riêng bạn
#
# Vẫn lượt xuôi ấy, viết bằng CUDA: mỗi khối thread xử lý một (batch × head, ô 64 truy vấn), mỗi thread một hàng truy
# vấn, giữ truy vấn, giá trị lớn nhất, tổng tích lũy và hàng đầu ra trong thanh ghi float32; mỗi ô 32 khóa và giá trị
# được cả khối nạp vào bộ nhớ chia sẻ (shared memory) một lần, rồi mọi thread đọc từ đó. Vào và ra bằng fp16. Kernel
# được biên dịch ngay tại đây bằng `torch.utils.cpp_extension.load_inline`, cho kiến trúc của GPU này (trên T4 là sm75),
# rồi được kiểm tra với tham chiếu fp32 và thư viện đã cài, và đo thời gian so với attention ngây thơ của PyTorch và thư
# viện. Không dùng Triton: nó hỏng trên T4 với Triton của Colab.

# %%
kernel = fs.KERNEL_SOURCE[fs.KERNEL_SOURCE.index("template <int D") : fs.KERNEL_SOURCE.index("std::vector")]
notebook.show_source(kernel.strip(), language="cuda")

# %% tags=["nbval-ignore-output"]
import time

from torch.utils.cpp_extension import CUDA_HOME
from vanilla_flash import attention, env, targets

machine = env.probe()
library = targets.get(target).backend if target in targets.TARGETS else None
if library and attention.why_not(library, machine, dtype=torch.float16, head_dim=64, training=False):
    library = "sdpa_flash" if attention.why_not("sdpa_flash", machine, dtype=torch.float16) is None else None
if device != "cuda" or CUDA_HOME is None:
    why = "no GPU here" if device != "cuda" else "no CUDA compiler (nvcc) here"
    print(f"{why}: on a GPU this cell compiles vf_flash_forward with nvcc ({fs.gencode('75')} on a T4) and compares it "
          "with naive attention and the library; skipped")  # fmt: skip
else:
    start = time.perf_counter()
    module = fs.build_kernel(build_dir=str(notebook.storage("kernels", colab_drive=False)))
    print(f"compiled for sm{machine.capability[0]}{machine.capability[1]} in {time.perf_counter() - start:.0f} s")
    for seq in (1024, 4096):
        r = fs.compare_on_gpu(module, [library] if library else [], seq=seq)
        line = f"{r['shape']}: own kernel rel. err {r['own_kernel_rel_err']:.1e}, {r['own_kernel_ms']:.2f} ms; "
        line += f"naive {r['naive_ms']:.2f} ms"
        for name, lib in r["libraries"].items():
            line += f"; {name} rel. err {lib['rel_err']:.1e}, {lib['ms']:.2f} ms"
        print(line)

# %% [markdown]
# **Measured on an H200**, by the same code (`experiments/from_scratch/run.py`), read from
# `results/h200/from_scratch/from_scratch.json`: the kernel built as sm_90 machine code and as `compute_75` PTX alone,
# the build a T4 gets, which the driver compiled when it loaded. Not measured: a T4 itself.

# %% [markdown] lang="vi"
# **Số đo trên một H200**, bằng chính đoạn mã này (`experiments/from_scratch/run.py`), đọc từ
# `results/h200/from_scratch/from_scratch.json`: kernel được biên dịch thành mã máy sm_90 và thành PTX `compute_75`
# thuần, bản build mà T4 nhận, do driver biên dịch khi nạp. Chưa đo: chính một chiếc T4.

# %%
from vanilla_flash.results import tables

notebook.show_markdown(tables.from_scratch_markdown("results/h200/from_scratch/from_scratch.json"))

# %% tags=["nbval-ignore-output"]
notebook.show("docs/en/img/from_scratch_h200.png")

# %% [markdown]
# **What the library does that this kernel does not.** Each thread here does its dot products one multiply-add at a
# time on the CUDA cores; the library feeds the **tensor cores** with matrix instructions (MMA; on Hopper, WGMMA), which
# do a whole tile product per instruction, at many times the rate. It splits a tile across **warps** so that each works
# on registers it owns; it **pipelines** the copies (the next tile loads while this one computes: `cp.async`, on Hopper
# the TMA unit); FlashAttention-2 partitions the work so that the warps of a block rarely need to share partial sums and
# parallelises over the sequence too; FlashAttention-3 and 4 overlap the softmax of one tile with the matrix products of
# the next (asynchrony, warp specialisation). The numbers above show what that is worth.

# %% [markdown] lang="vi"
# **Những gì thư viện làm mà kernel này không làm.** Ở đây mỗi thread tính tích vô hướng từng phép nhân-cộng một trên
# lõi CUDA; thư viện đưa việc cho **tensor core** bằng lệnh ma trận (MMA; trên Hopper là WGMMA), mỗi lệnh tính cả một
# tích ô, nhanh gấp nhiều lần. Nó chia một ô cho các **warp** để mỗi warp làm việc trên thanh ghi của riêng mình; nó
# **xếp đường ống** các lần sao chép (ô tiếp theo được nạp trong khi ô này đang tính: `cp.async`, trên Hopper là bộ
# TMA); FlashAttention-2 chia việc sao cho các warp trong một khối hiếm khi phải dùng chung tổng tạm, và song song hóa
# cả theo chiều dài chuỗi; FlashAttention-3 và 4 cho softmax của ô này chạy chồng lên phép nhân ma trận của ô sau (bất
# đồng bộ, chuyên biệt hóa warp). Các con số ở trên cho thấy điều đó đáng giá bao nhiêu.
