# %% [markdown]
# # flash-attn $version · Train GPT-2 on Wikisource
#
# $colab_badge
#
# GPT-2 trained on Vietnamese Wikisource through PyTorch Lightning, with the attention backend this GPU runs best, the
# precision chosen from the hardware (so nothing is ever cast by hand), checkpoints that survive a dead Colab session, a
# loss curve and generated text.
#
# $expected_gpu

# %% [markdown] lang="vi"
# ## Huấn luyện GPT-2 trên Wikisource
#
# Huấn luyện GPT-2 trên Wikisource tiếng Việt bằng PyTorch Lightning, với backend attention tốt nhất cho GPU này, độ
# chính xác (precision) chọn theo phần cứng (không bao giờ ép kiểu bằng tay), checkpoint sống sót khi phiên Colab chết,
# đường cong loss và văn bản sinh ra.
#
# $expected_gpu_vi

# %% preamble=true
# Stands in for the parameters cell and the two set-up cells, which notebooks/build.py writes here.
from vanilla_flash import notebook

target = fa1_source = fa1_archs = fa1_head_dims = fa1_extensions = train = benchmark = None
fa2_source = fa2_archs = fa2_head_dims = None

# %% [markdown]
# ## 1. Tokens per word
#
# GPT-2's BPE was trained on English web text: Vietnamese costs it several tokens per word. A byte-level BPE trained on
# the training split needs far fewer, which means more text per block of `seq_len` tokens.

# %% [markdown] lang="vi"
# ## 1. Số token mỗi từ
#
# BPE của GPT-2 được huấn luyện trên văn bản web tiếng Anh: với tiếng Việt nó tốn nhiều token cho mỗi từ. Một BPE mức
# byte huấn luyện trên tập train cần ít token hơn hẳn, nghĩa là mỗi khối `seq_len` token chứa được nhiều chữ hơn.

# %% tags=["nbval-ignore-output"]
from vanilla_flash import data

comparison = data.compare_tokenizers(train["lang"], vocab_size=train.get("bpe_vocab_size", 4096))

# %%
for tokenizer, per_word in comparison["tokens_per_word"].items():
    print(f"{tokenizer:<18} {per_word:.2f} tokens/word")
print(f"GPT-2 needs {comparison['ratio']:.1f}x the tokens")

# %% [markdown]
# ## 2. The run
#
# The `train` parameters are the same fields as the YAML file the command line takes (`python -m vanilla_flash train
# --config notebooks/params/t4.yaml`). Checkpoints go to Google Drive on Colab: run the notebook again after a
# disconnect and it continues from the last one.

# %% [markdown] lang="vi"
# ## 2. Chạy huấn luyện
#
# Tham số `train` là các trường của tệp YAML mà dòng lệnh dùng (`python -m vanilla_flash train --config
# notebooks/params/t4.yaml`). Trên Colab checkpoint được lưu vào Google Drive: mất kết nối thì chạy lại notebook, nó sẽ
# tiếp tục từ checkpoint cuối.

# %%
from vanilla_flash.config import TrainConfig
from vanilla_flash.train import train as run_training

cfg = TrainConfig.from_dict({**train, "ckpt_dir": str(notebook.storage("checkpoints/$notebook_set"))})
print(
    f"GPT-2 {cfg.model_size}, seq {cfg.seq_len}, batch {cfg.batch_size}, {cfg.max_steps} steps, "
    f"attention {cfg.attn}, tokenizer {cfg.tokenizer}, data {cfg.data_source}/{cfg.lang}"
)

# %% tags=["nbval-ignore-output"]
summary = run_training(cfg)

# %%
print("steps:", summary["steps"])
print("attention:", summary["attention"])
print("precision:", summary["precision"])
print("data:", summary["data"]["source"])

# %% [markdown]
# ## 3. What happened

# %% [markdown] lang="vi"
# ## 3. Kết quả

# %% tags=["nbval-ignore-output"]
from vanilla_flash import report

notebook.show(f"{cfg.run_dir}/loss.png")
print("final:", summary["final"])
print(report.speed_line(summary))
print("sample:", summary["sample"])
