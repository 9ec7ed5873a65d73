# %% [markdown] sets=["flash_attn_1"]
# # flash-attn $version · Build
#
# $colab_badge
#
# Building flash-attn 1.0.9 from source once, quickly, with a visible timed log, and keeping the wheel so the next Colab
# session reinstalls it in seconds.
#
# $expected_gpu

# %% [markdown] lang="vi"
# # flash-attn $version · Biên dịch
#
# $colab_badge
#
# Biên dịch flash-attn 1.0.9 từ mã nguồn, chỉ một lần và thật nhanh, có log và số đo thời gian rõ ràng, rồi giữ lại
# wheel để phiên Colab sau cài lại trong vài giây.
#
# $expected_gpu_vi

# %% [markdown] sets=["flash_attn_2"]
# # flash-attn $version · Build
#
# $colab_badge
#
# Finding the prebuilt flash-attn 2 wheel that matches this torch, and where none exists (Colab's torch 2.11 among
# them), building just what GPT-2 needs, once, and keeping the wheel.
#
# $expected_gpu

# %% [markdown] lang="vi"
# # flash-attn $version · Biên dịch
#
# $colab_badge
#
# Tìm wheel flash-attn 2 dựng sẵn khớp với torch đang có; khi không có (như với torch 2.11 của Colab), biên dịch một
# lần đúng phần GPT-2 cần rồi giữ lại wheel.
#
# $expected_gpu_vi

# %% [markdown] sets=["flash_attn_4"]
# # flash-attn $version · Build
#
# $colab_badge
#
# Why flash-attn 4 needs no build step, and what its just-in-time compilation means for the first steps.
#
# $expected_gpu

# %% [markdown] lang="vi"
# # flash-attn $version · Biên dịch
#
# $colab_badge
#
# Vì sao flash-attn 4 không cần bước biên dịch, và việc biên dịch tức thời (JIT) ảnh hưởng thế nào đến các bước đầu.
#
# $expected_gpu_vi

# %% preamble=true
# Stands in for the parameters cell and the two set-up cells, which notebooks/build.py writes here.
from vanilla_flash import notebook

target = fa1_source = fa1_archs = fa1_head_dims = fa1_extensions = train = benchmark = None
fa2_source = fa2_archs = fa2_head_dims = None

# %% tags=["nbval-ignore-output"]
from vanilla_flash import env
from vanilla_flash.builds import install

machine = env.probe()
print(install.plan(machine, target))

# %% [markdown] sets=["flash_attn_1"]
# ## Why build at all?
#
# flash-attn 1.x publishes no wheels: `pip install flash-attn==1.0.9` compiles it (about 15 minutes on Colab's 2 cores,
# said the student's notes). Four things make that short: **ninja** (without it torch compiles one file at a time),
# **MAX_JOBS** sized from cores *and* RAM (each compiler job needs a few GiB; too many and the build is killed halfway),
# compiling **only this GPU's architecture** (sm75 on a T4) instead of sm75, sm80 and sm90, and only **the kernels GPT-2
# needs** (`fa1_head_dims: [64]`: 2 of its 8 CUDA files; a call that needs another head dim stops and says how to
# rebuild). The wheel goes to a cache folder on Google Drive, so the next Colab session installs it in seconds. The
# builds measured so far, read from `results/builds.json`:

# %% [markdown] lang="vi"
# ## Vì sao phải biên dịch?
#
# flash-attn 1.x không có wheel dựng sẵn: `pip install flash-attn==1.0.9` sẽ biên dịch (khoảng 15 phút với 2 nhân CPU
# của Colab, theo ghi chép của sinh viên). Có bốn cách rút ngắn thời gian build: **ninja** (thiếu nó, torch biên
# dịch từng tệp một), **MAX_JOBS** tính theo số nhân *và* RAM (mỗi tiến trình biên dịch cần vài GiB; chạy quá nhiều
# thì bản build bị hệ thống kill giữa chừng), chỉ biên dịch **đúng kiến trúc của GPU này** (sm75 trên T4) thay vì cả
# sm75, sm80 và sm90, và chỉ **những kernel GPT-2 cần** (`fa1_head_dims: [64]`: 2 trong 8 tệp CUDA; lời gọi cần head
# dim khác sẽ dừng lại và chỉ cách build lại). Wheel được lưu vào thư mục cache trên Google Drive, nên phiên Colab sau
# cài lại trong vài giây. Các lần build đã đo, đọc từ `results/builds.json`:

# %% sets=["flash_attn_1"]
from vanilla_flash.results import tables

notebook.show_markdown(tables.builds_markdown("results/builds.json", package="flash-attn 1.0.9"))

# %% sets=["flash_attn_1"] tags=["nbval-ignore-output"]
from vanilla_flash.builds import sources

print("ninja:", "found" if sources.ninja_ok() else "missing")
print("MAX_JOBS:", sources.max_jobs())

# %% sets=["flash_attn_1"] tags=["nbval-ignore-output"]
can_build = machine.device == "cuda"
result = sources.build_fa1(
    notebook.storage("wheels"), source=fa1_source, archs=fa1_archs, head_dims=fa1_head_dims, dry_run=not can_build
)
if result.wheel and machine.flash_attn_major() != 1:
    install.install_cached(result.wheel)

# %% [markdown] sets=["flash_attn_2"]
# ## A wheel if one exists, else just what GPT-2 needs
#
# flash-attn 2.x is 72 kernel files (6 head dims × 2 dtypes × causal or not × forward, split-KV forward, backward): over
# an hour to compile even on 16 cores. Its GitHub releases carry prebuilt wheels whose *file name* says what they were
# built for (flash-attn version, CUDA major, torch major.minor, C++ ABI, Python), but only for torch 2.4 to 2.8; a
# mismatched one fails on import with `undefined symbol`. So `install.fa2_path` looks, in this order, for: a flash-attn
# 2 already installed; a wheel a release really publishes (a table of each release's build matrix, never a guessed
# URL); a community wheel whose sha256 is pinned (none yet: none publishes a checksum); else a **source build of just
# what GPT-2 needs**: head dim 64 only (12 files), this GPU's architecture only, and flash-attn's own switches off for
# what GPT-2 never calls (ALiBi, soft-capping, sliding windows, head dims that are not a multiple of 32). A call the
# build cannot run stops with a message saying how to rebuild. The wheel is cached like flash-attn 1.x's (Google Drive
# on Colab), so only the first session sources.

# %% [markdown] lang="vi"
# ## Có wheel thì dùng wheel, không thì chỉ biên dịch đúng phần GPT-2 cần
#
# flash-attn 2.x gồm 72 tệp kernel (6 head dim × 2 kiểu dữ liệu × causal hay không × lượt xuôi, lượt xuôi split-KV,
# lượt ngược): biên dịch mất hơn một giờ kể cả với 16 nhân CPU. Trang release trên GitHub có wheel dựng sẵn, và *tên
# tệp* cho biết wheel được dựng cho môi trường nào (phiên bản flash-attn, CUDA major, torch major.minor, C++ ABI,
# Python), nhưng chỉ có cho torch 2.4 đến 2.8; wheel không khớp sẽ báo lỗi `undefined symbol` khi import. Vì vậy
# `install.fa2_path` tìm lần lượt: flash-attn 2 đã cài sẵn; wheel mà một bản release thật sự phát hành (một bảng chép
# ma trận build của từng release, không bao giờ đoán URL); wheel cộng đồng có sha256 được ghim (chưa có: chưa nơi nào
# công bố checksum); nếu vẫn không có thì **biên dịch từ mã nguồn đúng phần GPT-2 cần**: chỉ head dim 64 (12 tệp), chỉ
# kiến trúc của GPU này, và dùng chính các công tắc của flash-attn để tắt những gì GPT-2 không bao giờ gọi (ALiBi,
# soft-capping, sliding window, head dim không chia hết cho 32). Lời gọi mà bản build không chạy được sẽ dừng lại và
# chỉ cách build lại. Wheel được cache như của flash-attn 1.x (trên Google Drive nếu chạy trên Colab), nên chỉ phiên
# đầu tiên phải biên dịch.

# %% sets=["flash_attn_2"] tags=["nbval-ignore-output"]
import dataclasses

# Colab's A100 runtime (2026.07: torch 2.11.0+cu128, Python 3.12): what it would take, wherever this runs
colab_a100 = dataclasses.replace(machine, device="cuda", gpu_name="NVIDIA A100-SXM4-40GB", capability=(8, 0),
                                 torch="2.11.0+cu128", cuda="12.8", python="3.12.13", cxx11_abi=True, colab=True,
                                 flash_attn=None)  # fmt: skip
for who, m in (("this machine", machine), ("Colab's A100 (simulated)", colab_a100)):
    if m.device == "cuda":
        path = install.fa2_path(m)
        print(f"{who}: {path.kind}: {path.why}" + (f"\n  {path.url}" if path.url else ""))

# %% [markdown] sets=["flash_attn_2"]
# The builds measured so far, read from `results/builds.json` (on the H200 these are Ampere kernels compiled for sm90,
# not an Ampere card):

# %% [markdown] lang="vi"
# Các lần build đã đo, đọc từ `results/builds.json` (trên H200 đây là các kernel Ampere được biên dịch cho sm90, không
# phải một card Ampere):

# %% sets=["flash_attn_2"]
from vanilla_flash.results import tables

notebook.show_markdown(tables.builds_markdown("results/builds.json", package="flash-attn 2.8.3"))

# %% sets=["flash_attn_2"] tags=["nbval-ignore-output"]
from vanilla_flash.builds import edits, sources

can_build = machine.device == "cuda"
path = install.fa2_path(machine) if can_build else install.fa2_path(colab_a100)
if path.kind == "build":
    archs = fa2_archs or [edits.fa2_arch_for(machine.cc if can_build else colab_a100.cc)]
    result = sources.build_fa2(
        notebook.storage("wheels"), source=fa2_source, archs=archs, head_dims=fa2_head_dims, dry_run=not can_build
    )
    if result.wheel and machine.flash_attn_major() != 2:
        install.install_cached(result.wheel)
else:
    print(install.ensure(install.plan(machine, target), cache_dir=notebook.storage("wheels")))

# %% [markdown] sets=["flash_attn_4"]
# ## Nothing to compile
#
# flash-attn 4 is written in CuTe DSL (Python): `pip install flash-attn-4` brings wheels, and each kernel is compiled
# just in time the first time a shape is seen (seconds), then cached. On an H100 the first training step is therefore
# slower than the rest.

# %% [markdown] lang="vi"
# ## Không cần biên dịch
#
# flash-attn 4 được viết bằng CuTe DSL (Python): `pip install flash-attn-4` tải wheel về, và mỗi kernel được biên dịch
# tức thời (JIT) vào lần đầu gặp một kích thước mới (mất vài giây) rồi được cache lại. Vì vậy trên H100, bước huấn
# luyện đầu tiên chậm hơn các bước sau.

# %% [markdown]
# ## The fused extensions a student once tried to build on Colab

# %% [markdown] lang="vi"
# ## Các extension hợp nhất mà một sinh viên từng thử build trên Colab

# %%
from vanilla_flash.builds import fused

print(fused.extension_note())

# %% [markdown] sets=["flash_attn_1"]
# ### Optional: build them anyway
#
# flash-attn's own GPT model (`model_impl: flash_attn` in the training parameters) can use them. `fa1_extensions` lists
# the ones to build, each timed, with its log, for this GPU's architecture only, cached like the main wheel.
# `dropout_layer_norm` is the long one: build it last, on a machine with many cores.

# %% [markdown] lang="vi"
# ### Tuỳ chọn: vẫn build chúng
#
# Mô hình GPT riêng của flash-attn (`model_impl: flash_attn` trong tham số huấn luyện) có thể dùng chúng.
# `fa1_extensions` liệt kê những extension cần build; mỗi extension chỉ được build cho kiến trúc của GPU này, có đo
# thời gian, có log, và được cache như wheel chính. `dropout_layer_norm` build lâu nhất: hãy build nó sau cùng, trên
# máy có nhiều nhân CPU.

# %% [markdown] sets=["flash_attn_1"]
# **Measured on an H100, not on a real T4:** how long each extension took to build, and how fast flash-attn's GPT-2
# trained without them, with them, and next to Hugging Face's GPT-2. The verdict: the model is worth it, the extensions
# are not. The cell below prints the numbers from the files under `results/h100/fa_gpt/`.

# %% [markdown] lang="vi"
# **Đo trên H100, chưa chạy trên T4 thật:** thời gian build từng extension, và tốc độ huấn luyện GPT-2 của flash-attn
# khi không dùng và khi dùng chúng, đặt cạnh GPT-2 của Hugging Face. Kết luận: bản thân mô hình đáng dùng, còn các
# extension thì không. Ô dưới đây in các số đo từ những tệp trong `results/h100/fa_gpt/`.

# %% sets=["flash_attn_1"]
from vanilla_flash.results import report

print(report.fa_gpt_measurements("results/h100/fa_gpt"))

# %% sets=["flash_attn_1"]
print(fused.extension_plan(fa1_extensions))

# %% sets=["flash_attn_1"] tags=["nbval-ignore-output"]
for extension in fa1_extensions:
    fused.build_extension(extension, fa1_source, notebook.storage("wheels"), archs=fa1_archs, dry_run=not can_build)
