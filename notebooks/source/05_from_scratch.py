# %% [markdown]
# # flash-attn $version · FlashAttention from scratch
#
# $colab_badge
#
# The other notebooks install, build and measure the library. In this one **you write the algorithm yourself**, one
# step at a time, and a check after each step says whether it is right, and if not, which rows, tiles or gradients
# differ and by how much: what naive attention costs, the online softmax, the tiled forward pass, the backward pass by
# recomputation. Then a ladder of CUDA kernels climbs from the simplest GPU version of your forward pass to tensor
# cores,
# one idea per rung, until it beats flash-attn 1.x on a T4's own instructions. Steps 1 to 4 run on any machine; step 5
# needs a GPU. Each exercise's solution is one click away, folded under it; when papermill runs this notebook (CI,
# `make run`), the parameter `solutions` fills them in.
#
# $expected_gpu

# %% [markdown] lang="vi"
# # flash-attn $version · FlashAttention từ con số không
#
# $colab_badge
#
# Các notebook khác cài đặt, biên dịch và đo thư viện. Ở notebook này **bạn tự viết thuật toán**, từng bước một: chi
# phí của attention cài đặt trực tiếp (naive), online softmax (softmax tính dần), lượt xuôi chia khối (tiled forward),
# lượt ngược bằng cách tính lại. Sau mỗi bước có một ô kiểm tra cho biết bạn viết đúng chưa; nếu sai, nó chỉ ra hàng,
# khối (tile) hay gradient nào lệch và lệch bao nhiêu. Sau đó, một chiếc thang kernel CUDA đi từ phiên bản GPU đơn
# giản nhất của lượt xuôi ấy lên tới tensor core, mỗi bậc một ý tưởng, cho đến khi nhanh hơn flash-attn 1.x trên chính
# tập lệnh của T4. Bước 1 đến 4 chạy trên mọi máy; bước 5 cần GPU. Lời giải của mỗi bài nằm ngay bên dưới, được thu
# gọn, chỉ cần bấm một lần để mở; khi papermill chạy notebook (CI, `make run`), tham số `solutions` điền sẵn lời giải.
#
# $expected_gpu_vi

# %% preamble=true
# Stands in for the parameters cell and the two set-up cells, which notebooks/build.py writes here.
from vanilla_flash import notebook

target = fa1_source = fa1_archs = fa1_head_dims = fa1_extensions = train = benchmark = solutions = None
fa2_source = fa2_archs = fa2_head_dims = None

# %%
from pathlib import Path

import torch
from vanilla_flash.teach import checks
from vanilla_flash.teach import from_scratch as fs

torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"
out = Path(train["run_dir"]).parent / "from_scratch"
out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Naive attention and what it costs
#
# Attention is softmax(QKᵀ/√d)·V. Written as it reads, it builds the **score matrix** S = QKᵀ: one number per pair of
# positions, S × S per head.
#
# **Your turn.** Write `naive_attention` below: the scores scaled by 1/√d, with `causal`, every key after the query
# masked to −∞ (query i sees keys 0..i), a softmax over the keys, then the product with V. Tensors are (batch, heads,
# seq, head_dim). Then run the check.

# %% [markdown] lang="vi"
# ## 1. Attention cài đặt trực tiếp (naive) và cái giá của nó
#
# Attention là softmax(QKᵀ/√d)·V. Viết đúng như công thức, nó tạo ra **ma trận điểm** S = QKᵀ: mỗi cặp vị trí một con
# số, tức S × S cho mỗi head.
#
# **Đến lượt bạn.** Viết `naive_attention` bên dưới: nhân điểm với 1/√d; khi `causal`, che mọi key đứng sau query
# bằng −∞ (query i chỉ thấy key 0..i); lấy softmax theo chiều key, rồi nhân với V. Tensor có dạng (batch, heads, seq,
# head_dim). Sau đó chạy ô kiểm tra.


# %%
def naive_attention(q, k, v, causal=False):
    """softmax(q kᵀ / √d) v; with `causal`, query i sees keys 0..i."""
    # TODO: your code here (about five lines)
    raise NotImplementedError


# %%
if solutions:  # papermill runs (CI, `make run`) fill in the library's solution; on Colab you write your own
    naive_attention = fs.naive_attention
print(checks.check("naive_attention", naive_attention))
notebook.show_solution(fs.naive_attention)

# %% [markdown]
# Its memory grows with the square of the sequence length; the cell below measures the score tensor's real storage (and,
# on a GPU, the peak memory naive attention and PyTorch's fused kernel add).

# %% [markdown] lang="vi"
# Bộ nhớ của nó tăng theo bình phương độ dài chuỗi; ô dưới đây đo dung lượng thật của tensor điểm (và trên GPU, bộ nhớ
# đỉnh mà attention trực tiếp và kernel hợp nhất của PyTorch dùng thêm).

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
# Bộ nhớ không phải cái giá duy nhất: thời gian còn đổ vào việc **chuyển byte** giữa bộ nhớ chính của GPU (HBM) và chip.
# Attention trực tiếp ghi S ra HBM, đọc lại để tính softmax, ghi P, rồi đọc P lần nữa để nhân với V: bài báo
# FlashAttention đếm Θ(Nd + N²) lần truy cập cho cách này, so với Θ(N²d²/M) cho thuật toán chia khối (tile) bên dưới,
# với M là dung lượng bộ nhớ trên chip.

# %% [markdown]
# **Exercises.** 1. How many bytes do the score matrices of GPT-2 124M take in one training step at batch 16,
# sequence 1024, 12 layers of 12 heads, in fp16? 2. Which line of your function would you change to make it skip the
# masked half of a causal row entirely, and what would that save?

# %% [markdown] lang="vi"
# **Bài tập.** 1. Trong một bước huấn luyện GPT-2 124M với batch 16, chuỗi 1024, 12 lớp mỗi lớp 12 head, ở fp16, các
# ma trận điểm chiếm bao nhiêu byte? 2. Bạn sẽ sửa dòng nào trong hàm của mình để bỏ hẳn nửa bị che của một hàng
# causal, và việc đó tiết kiệm được gì?

# %% [markdown]
# ## 2. Online softmax
#
# The trick that makes tiling possible: softmax over a row seen **a block at a time**. Keep a running maximum m and a
# running sum l of exp(x − m); when a block raises the maximum, rescale the sum by exp(m_old − m_new). Nothing about the
# row needs to be kept but these two numbers.
#
# **Your turn.** Write `online_softmax(x, block)`: softmax over the last dimension of `x`, reading `block` columns at a
# time for m and l, then one last pass for the result. The check tries several block sizes, one of them larger than
# the row.

# %% [markdown] lang="vi"
# ## 2. Online softmax (softmax tính dần)
#
# Mẹo giúp chia khối được: tính softmax trên một hàng mà **mỗi lần chỉ thấy một khối**. Giữ giá trị lớn nhất m và tổng
# l của exp(x − m), cả hai tích luỹ dần; khi một khối làm m tăng lên, nhân tổng với exp(m_cũ − m_mới) để co lại cho
# đúng tỉ lệ. Ngoài hai con số này, không cần giữ gì khác của hàng.
#
# **Đến lượt bạn.** Viết `online_softmax(x, block)`: softmax theo chiều cuối của `x`, mỗi lần đọc `block` cột để cập
# nhật m và l, rồi một lượt cuối để ra kết quả. Ô kiểm tra thử vài cỡ khối, trong đó có một cỡ lớn hơn cả hàng.


# %%
def online_softmax(x, block):
    """softmax over the last dimension of `x`, reading it `block` columns at a time."""
    # TODO: your code here (a running maximum m and sum l, rescaled when m grows)
    raise NotImplementedError


# %%
if solutions:
    online_softmax = fs.online_softmax
print(checks.check("online_softmax", online_softmax))
notebook.show_solution(fs.online_softmax)

# %% [markdown]
# **Exercises.** 1. Remove the rescaling (`l * exp(m − m_new)`) from your function: which block sizes does the check
# still accept, and why? 2. Return the log-sum-exp m + log l as well: it is all the backward pass will need.

# %% [markdown] lang="vi"
# **Bài tập.** 1. Bỏ bước co lại (`l * exp(m − m_mới)`) khỏi hàm của bạn: ô kiểm tra còn chấp nhận những cỡ khối nào,
# và vì sao? 2. Trả về thêm log-sum-exp m + log l: lượt ngược chỉ cần đúng con số này.

# %% [markdown]
# ## 3. The tiled forward pass
#
# FlashAttention-2's loop order: for each tile of queries (kept on chip), walk over the tiles of keys and values; each
# tile's scores exist only on chip, the online softmax folds them into a running output. The output and one number per
# row, the log-sum-exp, are all that is written back.
#
# **Your turn.** Write `tiled_forward(q, k, v, block_q, block_k, causal)` returning (output, log-sum-exp): the
# output of attention and, per query row, m + log l. Tile sizes need not divide the sequence; under `causal`, a tile of
# keys that lies wholly after the query tile can be skipped. The check names the query tiles that differ.

# %% [markdown] lang="vi"
# ## 3. Lượt xuôi chia khối (tiled forward)
#
# Thứ tự vòng lặp của FlashAttention-2: với mỗi tile query (giữ trên chip), đi qua lần lượt các tile key và value; điểm
# của mỗi tile chỉ tồn tại trên chip, và online softmax gộp chúng vào một đầu ra tích luỹ. Thứ duy nhất được ghi ngược
# ra bộ nhớ là đầu ra và một con số cho mỗi hàng: log-sum-exp.
#
# **Đến lượt bạn.** Viết `tiled_forward(q, k, v, block_q, block_k, causal)` trả về (đầu ra, log-sum-exp): đầu ra của
# attention và, với mỗi hàng query, m + log l. Độ dài chuỗi không cần chia hết cho cỡ tile; khi `causal`, có thể bỏ
# qua tile key nằm hẳn sau tile query. Ô kiểm tra chỉ ra những tile query bị lệch.


# %%
def tiled_forward(q, k, v, block_q=64, block_k=64, causal=False):
    """Attention by tiles: returns (output, log-sum-exp of each query row)."""
    # TODO: your code here (two loops over tiles, the online softmax of step 2 inside)
    raise NotImplementedError


# %%
if solutions:
    tiled_forward = fs.tiled_forward
print(checks.check("tiled_forward", tiled_forward))
notebook.show_solution(fs.tiled_forward)

# %% [markdown]
# The library's version also counts the bytes it moves, as a GPU kernel would: the cells below use it.

# %% [markdown] lang="vi"
# Phiên bản trong thư viện còn đếm số byte nó chuyển, theo cách một kernel GPU sẽ chuyển: các ô dưới đây dùng nó.

# %% [markdown]
# The bytes: counted by the function for short sequences (crosses), and the formulas for long ones. With tiles of
# 64 queries and head dim 64 the tiled pass moves about half as much; with 256 queries per tile, about eight times less.
# That is why the tile should be as large as the chip's fast memory allows.

# %% [markdown] lang="vi"
# Số byte: với chuỗi ngắn là số do hàm tự đếm (dấu x), với chuỗi dài là số tính theo công thức. Với tile 64 query và
# head dim 64, lượt chia tile chuyển khoảng một nửa lượng dữ liệu; với 256 query mỗi tile, ít hơn khoảng tám lần. Vì
# thế tile càng lớn càng tốt, trong giới hạn bộ nhớ nhanh trên chip.

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
# **Exercises.** 1. With tiles of 64 queries, how many times is each key read from main memory for a sequence of 4096?
# 2. Skip the key tiles a causal mask hides (if your function does not yet): how many fewer tiles are computed at
# sequence 1024 with tiles of 64?

# %% [markdown] lang="vi"
# **Bài tập.** 1. Với tile 64 query, mỗi key được đọc từ bộ nhớ chính bao nhiêu lần khi chuỗi dài 4096? 2. Bỏ qua các
# tile key bị mặt nạ causal che hết (nếu hàm của bạn chưa làm): ở chuỗi 1024 với tile 64, số tile phải tính giảm đi
# bao nhiêu?

# %% [markdown]
# ## 4. The backward pass, by recomputation
#
# Training needs gradients, and the naive backward pass reads the stored probabilities P (S × S again). FlashAttention
# keeps only the output O and the log-sum-exp, and **recomputes** each tile's P = exp(QKᵀ/√d − lse) when it needs it:
# more arithmetic, far less memory traffic. With D = rowsum(dO ∘ O), the softmax's gradient is dS = P ∘ (dP − D).
#
# **Your turn.** Write `tiled_backward(q, k, v, out, lse, grad_out, block_q, block_k, causal)` returning (dq, dk, dv),
# checked against autograd through attention.

# %% [markdown] lang="vi"
# ## 4. Lượt ngược, bằng cách tính lại
#
# Huấn luyện cần gradient, và lượt ngược kiểu trực tiếp phải đọc lại ma trận xác suất P đã lưu (lại là S × S).
# FlashAttention chỉ giữ đầu ra O và log-sum-exp, rồi **tính lại** P = exp(QKᵀ/√d − lse) của từng tile khi cần: tính
# toán nhiều hơn, nhưng chuyển dữ liệu ít hơn hẳn. Với D = rowsum(dO ∘ O), gradient của softmax là dS = P ∘ (dP − D).
#
# **Đến lượt bạn.** Viết `tiled_backward(q, k, v, out, lse, grad_out, block_q, block_k, causal)` trả về (dq, dk, dv);
# ô kiểm tra đối chiếu nó với autograd chạy qua attention.


# %%
def tiled_backward(q, k, v, out, lse, grad_out, block_q=64, block_k=64, causal=False):
    """dq, dk, dv by recomputing each tile's probabilities from q, k and the log-sum-exp."""
    # TODO: your code here (D = rowsum(dO ∘ O); per tile: P, dV += Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − D), dQ, dK)
    raise NotImplementedError


# %%
if solutions:
    tiled_backward = fs.tiled_backward
print(checks.check("tiled_backward", tiled_backward))
notebook.show_solution(fs.tiled_backward)

# %% [markdown]
# **Exercises.** 1. Why does the backward pass need the log-sum-exp, not m and l separately? 2. Count the matrix
# products per tile pair in your backward pass against the forward pass's two: that ratio is why training costs about
# three times a forward pass.

# %% [markdown] lang="vi"
# **Bài tập.** 1. Vì sao lượt ngược cần log-sum-exp, chứ không cần riêng m và l? 2. Đếm số phép nhân ma trận cho mỗi
# cặp tile trong lượt ngược của bạn, so với hai phép của lượt xuôi: tỉ lệ đó là lý do một bước huấn luyện tốn khoảng
# ba lần một lượt xuôi.

# %% [markdown]
# ## 5. Your own GPU kernel, and a ladder to tensor cores
#
# The same forward pass in CUDA, compiled right here with `torch.utils.cpp_extension.load_inline` for this GPU (on a
# T4, sm75). Rung 0 is the simplest kernel: one thread per query row, its query, running maximum, sum and output row
# in fp32 registers, each tile of keys and values loaded into shared memory once by the whole block. It is exactly
# right, and slower than naive PyTorch attention, whose matrix products run on tensor cores. Each rung after it
# changes one thing, shown as a diff against the rung before, and uses only instructions a T4 has. No Triton: on a T4
# it runs `tl.dot` without tensor cores.

# %% [markdown] lang="vi"
# ## 5. Kernel GPU của riêng bạn, và chiếc thang lên tensor core
#
# Vẫn lượt xuôi ấy, viết bằng CUDA và biên dịch ngay tại đây bằng `torch.utils.cpp_extension.load_inline` cho GPU này
# (trên T4 là sm75). Bậc 0 là kernel đơn giản nhất: mỗi thread một hàng query, giữ query, giá trị lớn nhất, tổng tích
# luỹ và hàng đầu ra trong thanh ghi fp32; mỗi tile key và value được cả thread block nạp vào shared memory một lần.
# Nó cho kết quả đúng hoàn toàn, nhưng chậm hơn cả attention trực tiếp bằng PyTorch, vốn nhân ma trận trên tensor core.
# Mỗi bậc sau đó thay đổi một điều, hiện dưới dạng diff so với bậc trước, và chỉ dùng lệnh mà T4 có. Không dùng Triton:
# trên T4, Triton chạy `tl.dot` mà không dùng tensor core.

# %%
from vanilla_flash.teach import ladder

for i, rung in enumerate(ladder.RUNGS):
    print(f"rung {i} · {rung.name}: {rung.idea}")

# %%
notebook.show_source(ladder.source("scalar"), language="cuda")

# %% [markdown]
# **Rung 1, a warp per 16 query rows.** Lanes split the keys for the scores and the columns for the output; a row's
# softmax is shared across the warp by shuffles. Every value read from shared memory now serves 16 rows, not one.

# %% [markdown] lang="vi"
# **Bậc 1, mỗi warp 16 hàng query.** Các lane chia nhau key khi tính điểm và chia nhau cột khi tính đầu ra; softmax của
# một hàng được chia sẻ trong warp bằng shuffle. Mỗi giá trị đọc từ shared memory giờ phục vụ 16 hàng, không phải một.

# %%
notebook.show_source(ladder.changes("warp_tiles"), language="diff")

# %% [markdown]
# **Rung 2, tensor cores.** QKᵀ and PV become `mma.sync.m16n8k8`: a warp multiplies a 16×8 fp16 tile by an 8×8 one into
# fp32 in one instruction, each lane holding a few elements of each tile, its fragment. The softmax still goes through
# shared memory.

# %% [markdown] lang="vi"
# **Bậc 2, tensor core.** QKᵀ và PV trở thành `mma.sync.m16n8k8`: một warp nhân một tile fp16 16×8 với một tile 8×8 ra
# fp32 trong một lệnh, mỗi lane giữ vài phần tử của mỗi tile, gọi là fragment. Softmax vẫn đi qua shared memory.

# %%
notebook.show_source(ladder.changes("mma"), language="diff")

# %% [markdown]
# **Rung 3, `ldmatrix`.** One instruction gives each lane its part of four 8×8 tiles from shared memory, 16 bytes a lane
# (`.trans` for V).

# %% [markdown] lang="vi"
# **Bậc 3, `ldmatrix`.** Một lệnh trao cho mỗi lane phần của nó trong bốn tile 8×8 từ shared memory, 16 byte mỗi lane
# (`.trans` cho V).

# %%
notebook.show_source(ladder.changes("ldmatrix"), language="diff")

# %% [markdown]
# **Rung 4, the online softmax in registers.** The scores stay in the accumulators; the four lanes of a row share its
# maximum with two shuffles; the accumulator of key tile j, rounded to fp16, is already the A fragment of step j of PV.

# %% [markdown] lang="vi"
# **Bậc 4, online softmax trong thanh ghi.** Điểm nằm yên trong các thanh ghi tích luỹ; bốn lane của một hàng chia sẻ
# giá trị lớn nhất bằng hai lệnh shuffle; thanh ghi tích luỹ của tile key j, làm tròn về fp16, chính là fragment A của
# bước j trong PV.

# %%
notebook.show_source(ladder.changes("softmax_in_registers"), language="diff")

# %% [markdown]
# **Rung 5, a swizzle.** Chunk c of row r is stored at chunk c XOR (r mod 8): the 8 rows one `ldmatrix` reads fall in 8
# different groups of shared-memory banks instead of one.

# %% [markdown] lang="vi"
# **Bậc 5, swizzle.** Đoạn c của hàng r được lưu ở đoạn c XOR (r mod 8): 8 hàng mà một lệnh `ldmatrix` đọc rơi vào 8
# nhóm bank khác nhau của shared memory thay vì cùng một nhóm.

# %%
notebook.show_source(ladder.changes("swizzle"), language="diff")

# %% [markdown]
# **Rung 6, prefetch.** The next key tile's loads are issued into registers before this tile is computed and stored to
# shared memory after it (a T4 has no `cp.async`): the loads hide behind the tensor cores' work.

# %% [markdown] lang="vi"
# **Bậc 6, nạp trước (prefetch).** Lệnh nạp tile key kế tiếp vào thanh ghi được phát ra trước khi tính tile này, và
# dữ liệu được ghi vào shared memory sau đó (T4 không có `cp.async`): thời gian nạp được giấu sau phần việc của tensor
# core.

# %%
notebook.show_source(ladder.changes("prefetch"), language="diff")

# %% [markdown]
# Now build every rung for this GPU, check each against float32 (777 tokens, a length no tile divides), and time them
# at GPT-2's shape beside naive PyTorch and this set's library.

# %% [markdown] lang="vi"
# Giờ biên dịch mọi bậc cho GPU này, kiểm tra từng bậc với float32 (777 token, một độ dài không chia hết cho cỡ tile
# nào), và đo thời gian ở kích thước của GPT-2, cạnh attention trực tiếp bằng PyTorch và thư viện của bộ notebook này.

# %% tags=["nbval-ignore-output"]
import time

from torch.utils.cpp_extension import CUDA_HOME
from vanilla_flash import attention, env, targets
from vanilla_flash.builds import inline

machine = env.probe()
library = targets.get(target).backend if target in targets.TARGETS else None
if library and attention.why_not(library, machine, dtype=torch.float16, head_dim=64, training=False):
    library = "sdpa_flash" if attention.why_not("sdpa_flash", machine, dtype=torch.float16) is None else None
if device != "cuda" or CUDA_HOME is None:
    why = "no GPU here" if device != "cuda" else "no CUDA compiler (nvcc) here"
    gencode = inline.gencode("75")
    print(f"{why}: on a GPU this cell compiles the {len(ladder.RUNGS)} rungs with nvcc ({gencode} on a T4), checks "
          "each against float32 and times them beside naive attention and the library; skipped")  # fmt: skip
else:
    start = time.perf_counter()
    arch = "compute_75" if target == "t4" else inline.this_gpu()  # the T4 set builds for a T4's instructions
    module = ladder.build(arch=arch, build_dir=notebook.storage("kernels", colab_drive=False))
    print(f"compiled {len(ladder.RUNGS)} rungs ({inline.gencode(arch)}) in {time.perf_counter() - start:.0f} s")
    for name in ladder.NAMES:
        worst = max(ladder.check(module, name, 2, 3, 777, d, c)["rel_err"] for d in (64, 128) for c in (True, False))
        print(f"{name:<22} largest relative error against float32: {worst:.1e}")
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(16, 12, 1024, 64, device="cuda", dtype=torch.float16, generator=g) for _ in range(3))
    kernels = {"naive": lambda: fs.naive_attention(q, k, v, True)}
    if library:
        kernels[library] = lambda: attention.attend(library, q, k, v, causal=True).transpose(1, 2)
    for name in ladder.NAMES:
        kernels[f"{name}@{arch}"] = lambda name=name: ladder.forward(module, name, q, k, v, True)[0]
    row = ladder.time_kernels(q, k, v, kernels)
    for name, ms in row["ms"].items():
        print(f"{name:<34} {ms:8.3f} ms" if ms else f"{name:<34} {row['rel_err'][name]}")
    rungs = [r.__dict__ for r in ladder.RUNGS]
    env_now = {"environment": {"machine": {"gpu_name": machine.gpu_name}}}
    notebook.show(ladder.plot({"rungs": rungs, "times": [row], **env_now}, out / "ladder.png"))

# %% [markdown]
# **Measured on an H100**, by the same code (`experiments/kernel_ladder`), read from
# `results/h100/kernel_ladder/kernel_ladder.json`: every rung built as `compute_75` PTX, the build a T4 gets, which the
# driver compiled when it loaded, beside flash-attn 1.0.9 built the same way and ssiu/flash-attention-turing, all in one
# process. Not measured: a T4 itself.

# %% [markdown] lang="vi"
# **Số đo trên một H100**, bằng chính mã này (`experiments/kernel_ladder`), đọc từ
# `results/h100/kernel_ladder/kernel_ladder.json`: mọi bậc được biên dịch thành PTX `compute_75`, bản build mà T4 nhận,
# do driver biên dịch khi nạp, cạnh flash-attn 1.0.9 biên dịch cùng cách và ssiu/flash-attention-turing, tất cả trong
# một tiến trình. Chưa đo: chính một chiếc T4.

# %%
from vanilla_flash.results import tables

notebook.show_markdown(tables.kernel_ladder_markdown("results/h100/kernel_ladder/kernel_ladder.json"))

# %% tags=["nbval-ignore-output"]
notebook.show("docs/en/img/kernel_ladder_h100.png")

# %% [markdown]
# **Your kernel as an attention backend.** The last rung is registered as `from_scratch`: `attention.attend` calls it,
# and a GPT-2 built with `attn="from_scratch"` runs it (fp16, head dims 64 and 128, no padding mask; its gradients
# come from the backward rung of section 6); what it cannot do, it refuses by name.

# %% [markdown] lang="vi"
# **Kernel của bạn làm backend attention.** Bậc cuối được đăng ký với tên `from_scratch`: `attention.attend` gọi nó, và
# một GPT-2 dựng với `attn="from_scratch"` sẽ dùng nó (fp16, head dim 64 và 128, không có mặt nạ padding; gradient lấy
# từ bậc ngược ở mục 6); thứ gì nó không hỗ trợ đều bị từ chối và được nêu đích danh.

# %% tags=["nbval-ignore-output"]
reason = attention.why_not("from_scratch", machine, dtype=torch.float16, head_dim=64, training=False)
if reason:
    print(f"from_scratch cannot run here: {reason}")
else:
    mine = attention.attend("from_scratch", q, k, v, causal=True)
    theirs = attention.attend("sdpa", q, k, v, causal=True)
    print(f"from_scratch against sdpa: largest difference {(mine - theirs).abs().max().item():.1e}")

# %% [markdown]
# **Exercises.** 1. In rung 5, swizzle with `r % 4` instead of `r % 8`: what does the check say, and the time? 2. Set
# `BLOCK_N = 32` in rung 6: what changes at head dim 64 and at 128, and why? 3. The native build of rung 6 uses no
# instruction newer than a T4's: which of Ampere's (`cp.async`, `mma.m16n8k16`) would you try first?
#
# **What the library still does that this ladder does not.** Training through the kernel (part 2 of this course);
# FlashAttention-2 on Ampere uses `cp.async` copies and the wider `m16n8k16` product; FlashAttention-3 and 4 on Hopper
# and Blackwell use the TMA copy engine and warpgroup matrix instructions (`wgmma`, `tcgen05`), and overlap one tile's
# softmax with the next tile's products in warps that specialise in loading or computing.

# %% [markdown] lang="vi"
# **Bài tập.** 1. Ở bậc 5, swizzle bằng `r % 4` thay cho `r % 8`: ô kiểm tra nói gì, và thời gian ra sao? 2. Đặt
# `BLOCK_N = 32` ở bậc 6: điều gì thay đổi ở head dim 64 và 128, và vì sao? 3. Bản build riêng cho GPU của bậc 6 không
# dùng lệnh nào mới hơn tập lệnh của T4: trong các lệnh của Ampere (`cp.async`, `mma.m16n8k16`), bạn sẽ thử lệnh nào
# trước?
#
# **Những gì thư viện còn làm mà chiếc thang này chưa làm.** Huấn luyện qua kernel này (phần 2 của khoá học);
# FlashAttention-2 trên Ampere dùng lệnh chép bất đồng bộ `cp.async` và phép nhân rộng hơn `m16n8k16`;
# FlashAttention-3 và 4 trên Hopper và Blackwell dùng bộ chép dữ liệu TMA (copy engine) và lệnh ma trận theo warpgroup
# (`wgmma`, `tcgen05`), và cho softmax của tile này chạy chồng lên phép nhân của tile sau, với các warp chuyên nạp dữ
# liệu hoặc chuyên tính toán.

# %% [markdown]
# ## 6. The backward pass on the same instructions
#
# Step 4's backward pass as CUDA, in FlashAttention-2's loop order: a block owns a tile of keys and walks the query
# tiles, recomputing each tile's probabilities from the log-sum-exp the forward pass stored. Rung 0 is plain fp32 (one
# thread per key for dK and dV, one per query for dQ); rung 1 puts the five matrix products on the tensor cores, dK and
# dV in registers, dQ through shared memory and float32 atomics.

# %% [markdown] lang="vi"
# ## 6. Lượt ngược trên cùng tập lệnh
#
# Lượt ngược của bước 4, viết bằng CUDA theo thứ tự vòng lặp của FlashAttention-2: mỗi thread block giữ một tile key
# và đi qua các tile query, tính lại xác suất của từng tile từ log-sum-exp mà lượt xuôi đã lưu. Bậc 0 là fp32 thuần
# (mỗi thread một key cho dK và dV, mỗi thread một query cho dQ); bậc 1 đưa năm phép nhân ma trận lên tensor core, dK
# và dV nằm trong thanh ghi, dQ đi qua shared memory và các phép cộng atomic float32.

# %%
for i, rung in enumerate(ladder.BACKWARD_RUNGS):
    print(f"backward rung {i} · {rung.name}: {rung.idea}")
notebook.show_source(ladder.source("backward_mma"), language="cuda")

# %% tags=["nbval-ignore-output"]
if device != "cuda" or CUDA_HOME is None:
    print("no GPU or no nvcc here: on a GPU this cell compiles the backward rungs with the last forward rung, checks "
          "dQ, dK and dV against autograd of float32 attention and times forward + backward; skipped")  # fmt: skip
else:
    names = [ladder.NAMES[-1], *(r.name for r in ladder.BACKWARD_RUNGS)]
    module = ladder.build(names, arch=arch, build_dir=notebook.storage("kernels", colab_drive=False))
    for rung in ladder.BACKWARD_RUNGS:
        for d, c in ((64, True), (128, False)):
            r = ladder.check_backward(module, rung.name, 2, 3, 777, d, c)
            print(f"{rung.name:<16} {r['shape']} causal={c}: dq {r['dq']:.1e}, dk {r['dk']:.1e}, dv {r['dv']:.1e}")
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v, grad = (torch.randn(16, 12, 1024, 64, device="cuda", dtype=torch.float16, generator=g) for _ in range(4))

    def ours(name):
        out, lse = ladder.forward(module, ladder.NAMES[-1], q, k, v, True)
        return ladder.backward(module, name, q, k, v, out, lse, grad, True)

    def autograd(fn):
        leaves = [t.detach().requires_grad_(True) for t in (q, k, v)]
        return torch.autograd.grad(fn(*leaves), leaves, grad)

    calls = {"naive": lambda: autograd(lambda a, b, c: fs.naive_attention(a, b, c, True))}
    if library and not attention.why_not(library, machine, dtype=torch.float16, head_dim=64):
        calls[library] = lambda: autograd(
            lambda a, b, c: attention.attend(library, a, b, c, causal=True).transpose(1, 2)
        )
    calls |= {rung.name: lambda n=rung.name: ours(n) for rung in ladder.BACKWARD_RUNGS}
    from vanilla_flash.bench import timing

    for name, call in calls.items():
        print(f"forward + backward, {name:<16} {timing.timeit(call):8.3f} ms")

# %% [markdown]
# **Measured on an H100** (`experiments/kernel_ladder/backward.py`, read from
# `results/h100/kernel_ladder/backward.json`), forward and backward together, every kernel but SDPA's as `compute_75`
# PTX. Training GPT-2 through these kernels, and a backend with their gradients, are the rest of part 2.

# %% [markdown] lang="vi"
# **Số đo trên một H100** (`experiments/kernel_ladder/backward.py`, đọc từ `results/h100/kernel_ladder/backward.json`),
# lượt xuôi và lượt ngược cùng nhau, mọi kernel trừ của SDPA đều là PTX `compute_75`. Phần còn lại của phần 2 là
# huấn luyện GPT-2 qua các kernel này, và một backend dùng gradient của chúng.

# %%
notebook.show_markdown(tables.kernel_ladder_markdown("results/h100/kernel_ladder/backward.json"))
