# %% [markdown]
# # flash-attn $version · Install
#
# $colab_badge
#
# What this machine is, what it needs for FlashAttention, installing it (a second run is a no-op), and a real kernel
# call checked against an fp32 reference.
#
# $expected_gpu

# %% [markdown] lang="vi"
# # flash-attn $version · Cài đặt
#
# $colab_badge
#
# Notebook này cho biết máy của bạn là máy gì và cần gì để chạy FlashAttention, cài những thứ đó (chạy lại lần hai thì
# không cài gì thêm), rồi gọi thử một kernel thật và so với kết quả tham chiếu fp32.
#
# $expected_gpu_vi

# %% preamble=true
# Stands in for the parameters cell and the two set-up cells, which notebooks/build.py writes here.
from vanilla_flash import notebook

target = fa1_source = fa1_archs = fa1_head_dims = fa1_extensions = train = benchmark = None
fa2_source = fa2_archs = fa2_head_dims = None

# %% [markdown]
# ## 1. What is this machine?
#
# The environment report reads the GPU, its compute capability and memory, the driver, CUDA, torch, cuDNN and Triton
# versions, and which flash-attn is installed. On Colab it also points Triton at Colab's `libcuda.so`, in this process.
# `libcuda.so cannot found` was the first error in the lab notes this project grew from, a student's attempt at
# flash-attn with GPT-2 on a Colab T4; an `!export` in a cell, as tried there, changes nothing for later cells.

# %% [markdown] lang="vi"
# ## 1. Máy này là gì?
#
# Báo cáo môi trường đọc GPU, compute capability, bộ nhớ, phiên bản driver, CUDA, torch, cuDNN, Triton và flash-attn đã
# cài. Trên Colab, nó còn chỉ cho Triton biết `libcuda.so` nằm ở đâu, ngay trong tiến trình này.
# `libcuda.so cannot found` là lỗi đầu tiên trong ghi chép thí nghiệm đã khởi đầu dự án này, khi một sinh viên thử
# flash-attn với GPT-2 trên T4 của Colab; lệnh `!export` trong một ô, như sinh viên đó đã thử, không có tác dụng
# với các ô sau.

# %% tags=["nbval-ignore-output"]
from vanilla_flash.builds import install
from vanilla_flash.results import provenance

report = provenance.describe()
print(report)

# %%
runs_here = [name for name, why in report.backends.items() if why is None]
print("attention backends that run here:", ", ".join(runs_here))
print("auto picks (head dim 64, seq 1024):", report.auto_pick)

# %% [markdown]
# Every backend that cannot run here says why, in a sentence you can act on (see the table above).

# %% [markdown] lang="vi"
# Với mỗi backend không chạy được ở đây, báo cáo nêu lý do và việc bạn có thể làm (xem bảng ở trên).

# %% [markdown]
# ## 2. What does this GPU need?

# %% [markdown] lang="vi"
# ## 2. GPU này cần gì?

# %%
plan = install.plan(report.machine, target)
print(plan)

# %% [markdown]
# ## 3. Install
#
# `install.ensure` installs only what is missing, with `pip` calls that fail loudly (a failing `!pip` line does not fail
# its cell, so the notebook would go on as if nothing happened).

# %% [markdown] lang="vi"
# ## 3. Cài đặt
#
# `install.ensure` chỉ cài những gì còn thiếu, và lệnh `pip` nào thất bại sẽ báo lỗi ngay (một dòng `!pip` thất bại
# không làm ô chứa nó báo lỗi, nên notebook sẽ chạy tiếp như thể không có chuyện gì).

# %%
print(install.ensure(plan, cache_dir=notebook.storage("wheels")))

# %% [markdown]
# ## 4. A real kernel call
#
# The backend this GPU runs best, forward and backward on random inputs, compared with attention computed in fp32. On
# CPU this checks PyTorch's SDPA instead.

# %% [markdown] lang="vi"
# ## 4. Gọi kernel thật
#
# Backend tốt nhất cho GPU này chạy lượt xuôi và lượt ngược trên đầu vào ngẫu nhiên, rồi so với attention tính bằng
# fp32. Trên CPU, bước này kiểm tra SDPA của PyTorch.

# %% tags=["nbval-ignore-output"]
rows = notebook.verify(plan.backend, target)

# %%
for r in rows:
    print(f"{r.backend:<14} {r.dtype:<9} {r.shape:<28} {r.status}")
