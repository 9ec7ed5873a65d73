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
# ## Biên dịch
#
# Biên dịch flash-attn 1.0.9 từ mã nguồn một lần, nhanh, có log và thời gian rõ ràng, rồi giữ lại wheel để phiên Colab
# sau cài lại trong vài giây.
#
# $expected_gpu_vi

# %% [markdown] sets=["flash_attn_2"]
# # flash-attn $version · Build
#
# $colab_badge
#
# Finding the prebuilt flash-attn 2 wheel that matches this torch, and why building it from source is the last resort.
#
# $expected_gpu

# %% [markdown] lang="vi"
# ## Biên dịch
#
# Tìm wheel flash-attn 2 dựng sẵn khớp với torch đang có, và vì sao biên dịch từ mã nguồn là lựa chọn cuối cùng.
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
# ## Biên dịch
#
# Vì sao flash-attn 4 không cần bước biên dịch, và việc biên dịch tức thời (JIT) ảnh hưởng gì đến các bước đầu.
#
# $expected_gpu_vi

# %% preamble=true
# Stands in for the parameters cell and the two set-up cells, which notebooks/build.py writes here.
from vanilla_flash import notebook

target = fa1_source = fa1_archs = fa1_head_dims = fa1_extensions = train = benchmark = None

# %% tags=["nbval-ignore-output"]
from vanilla_flash import builds, env, install

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
# của Colab, theo ghi chép của sinh viên ấy). Bốn điều làm việc này ngắn lại: **ninja** (thiếu nó torch biên dịch từng
# tệp một), **MAX_JOBS** tính theo số nhân *và* RAM (mỗi tiến trình biên dịch cần vài GiB; quá nhiều thì bản build bị
# giết giữa chừng), chỉ biên dịch **đúng kiến trúc của GPU này** (sm75 trên T4) thay vì cả sm75, sm80 và sm90, và chỉ
# **những kernel GPT-2 cần** (`fa1_head_dims: [64]`: 2 trong 8 tệp CUDA; lời gọi cần head dim khác sẽ dừng lại và nói
# cách build lại). Wheel được lưu vào thư mục cache trên Google Drive, phiên Colab sau cài lại trong vài giây. Các lần
# build đã đo, đọc từ `results/builds.json`:

# %% sets=["flash_attn_1"]
from vanilla_flash import report

print(report.builds_table("results/builds.json", "flash-attn 1.0.9"))

# %% sets=["flash_attn_1"] tags=["nbval-ignore-output"]
print("ninja:", "found" if builds.ninja_ok() else "missing")
print("MAX_JOBS:", builds.max_jobs())

# %% sets=["flash_attn_1"] tags=["nbval-ignore-output"]
can_build = machine.device == "cuda"
result = builds.build_fa1(
    notebook.storage("wheels"), source=fa1_source, archs=fa1_archs, head_dims=fa1_head_dims, dry_run=not can_build
)
if result.wheel and machine.flash_attn_major() != 1:
    install.install_cached(result.wheel)

# %% [markdown] sets=["flash_attn_2"]
# ## A wheel, not a build
#
# flash-attn 2.x compiles about 80 CUDA files: over an hour even on a big machine. Its GitHub releases carry prebuilt
# wheels whose *file name* says what they were built for: flash-attn version, CUDA major version, torch major.minor, C++
# ABI and Python. The one that matches this torch installs in seconds; a mismatched one fails on import with `undefined
# symbol`.

# %% [markdown] lang="vi"
# ## Dùng wheel, không biên dịch
#
# flash-attn 2.x phải biên dịch khoảng 80 tệp CUDA: hơn một giờ kể cả trên máy mạnh. Trang release trên GitHub có wheel
# dựng sẵn, *tên tệp* cho biết nó được dựng cho gì: phiên bản flash-attn, CUDA, torch (major.minor), C++ ABI và Python.
# Wheel khớp với torch này cài trong vài giây; wheel không khớp sẽ lỗi `undefined symbol` khi import.

# %% sets=["flash_attn_2"] tags=["nbval-ignore-output"]
wheel = install.fa2_wheel(machine)
print(wheel)
print(install.fa2_wheel_url(wheel))

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
# tức thời (JIT) lần đầu gặp một kích thước mới (vài giây), rồi lưu cache. Vì vậy trên H100 bước huấn luyện đầu tiên
# chậm hơn các bước sau.

# %% [markdown]
# ## The fused extensions a student once tried to build on Colab

# %% [markdown] lang="vi"
# ## Các extension hợp nhất mà một sinh viên từng thử build trên Colab

# %%
print(builds.extension_note())

# %% [markdown] sets=["flash_attn_1"]
# ### Optional: build them anyway
#
# flash-attn's own GPT model (`model_impl: flash_attn` in the training parameters) can use them. `fa1_extensions` lists
# the ones to build, each timed, with its log, for this GPU's architecture only, cached like the main wheel.
# `dropout_layer_norm` is the long one: build it last, on a machine with many cores.

# %% [markdown] lang="vi"
# ### Tùy chọn: vẫn build chúng
#
# Mô hình GPT riêng của flash-attn (`model_impl: flash_attn` trong tham số huấn luyện) có thể dùng chúng.
# `fa1_extensions` liệt kê những extension cần build, mỗi cái đều được đo thời gian, có log, chỉ cho kiến trúc của GPU
# này, và được cache như wheel chính. `dropout_layer_norm` là cái lâu nhất: để nó sau cùng, trên máy nhiều nhân CPU.

# %% [markdown] sets=["flash_attn_1"]
# **Measured on an H100, not on a real T4:** how long each extension took to build, and how fast flash-attn's GPT-2
# trained without them, with them, and next to Hugging Face's GPT-2. The verdict: the model is worth it, the extensions
# are not. The cell below prints the numbers from the files under `results/h100/fa_gpt/`.

# %% [markdown] lang="vi"
# **Đo trên H100, chưa chạy trên T4 thật:** thời gian build từng extension, và tốc độ huấn luyện GPT-2 của flash-attn
# khi không dùng, khi dùng chúng, cạnh GPT-2 của Hugging Face. Kết luận: bản thân mô hình đáng dùng, còn các extension
# thì không. Ô dưới đây in các số đo từ những tệp trong `results/h100/fa_gpt/`.

# %% sets=["flash_attn_1"]
from vanilla_flash import report

print(report.fa_gpt_measurements("results/h100/fa_gpt"))

# %% sets=["flash_attn_1"]
print(builds.extension_plan(fa1_extensions))

# %% sets=["flash_attn_1"] tags=["nbval-ignore-output"]
for extension in fa1_extensions:
    builds.build_fa1_extension(
        extension, fa1_source, notebook.storage("wheels"), archs=fa1_archs, dry_run=not can_build
    )
