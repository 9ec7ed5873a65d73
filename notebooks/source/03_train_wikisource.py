# %% [markdown]
# # flash-attn $version · Train GPT-2 on Wikisource
#
# $colab_badge
#
# GPT-2 trained on Wikisource through PyTorch Lightning, in the language the parameters name (`train.lang`: `vi`,
# Vietnamese, in every parameters file; `en` for English), with the attention backend this GPU runs best, the
# precision chosen from the hardware (so nothing is ever cast by hand), checkpoints that survive a dead Colab session, a
# loss curve and generated text.
#
# $expected_gpu

# %% [markdown] lang="vi"
# # flash-attn $version · Huấn luyện GPT-2 trên Wikisource
#
# $colab_badge
#
# Huấn luyện GPT-2 trên Wikisource bằng PyTorch Lightning, với ngôn ngữ do tham số chọn (`train.lang`: `vi`, tiếng
# Việt, trong mọi tệp tham số; `en` cho tiếng Anh), backend attention tốt nhất cho GPU này, độ chính xác (precision)
# chọn theo phần cứng (không bao giờ ép kiểu bằng tay), checkpoint vẫn còn nguyên khi phiên Colab bị ngắt, cùng đường
# cong loss và văn bản do mô hình sinh ra.
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
# GPT-2's BPE was trained on English web text. Here it is measured against a byte-level BPE trained on the training
# split of this run's language (`train.lang`, split with its `seed`), in tokens per word of the validation split. On
# Vietnamese (`lang: vi`) GPT-2 needs several tokens per word and the trained BPE far fewer, which means more text per
# block of `seq_len` tokens; on English (`lang: en`) GPT-2's 50,257 tokens beat a small trained vocabulary.

# %% [markdown] lang="vi"
# ## 1. Số token mỗi từ
#
# BPE của GPT-2 được huấn luyện trên văn bản web tiếng Anh. Ở đây nó được so với một BPE mức byte huấn luyện trên tập
# train của ngôn ngữ mà lần chạy này dùng (`train.lang`, chia tập theo `seed` của nó), tính bằng số token mỗi từ trên
# tập validation. Với tiếng Việt (`lang: vi`), GPT-2 cần nhiều token cho mỗi từ, còn BPE tự huấn luyện cần ít hơn
# hẳn, nghĩa là mỗi đoạn `seq_len` token chứa được nhiều chữ hơn; với tiếng Anh (`lang: en`), bộ 50.257 token của
# GPT-2 lại tốt hơn một bộ từ vựng nhỏ tự huấn luyện.

# %% tags=["nbval-ignore-output"]
from vanilla_flash.config import TrainConfig
from vanilla_flash.training import data

cfg = TrainConfig.from_dict(train)  # this run's language, vocabulary and seed, with the training config's defaults
comparison = data.compare_tokenizers(cfg.lang, vocab_size=cfg.bpe_vocab_size, seed=cfg.seed)

# %%
print(f"language: {comparison['lang']}, {comparison['val_words']} words of validation text")
for tokenizer, per_word in comparison["tokens_per_word"].items():
    print(f"{tokenizer:<18} {per_word:.2f} tokens/word")
print(f"GPT-2 needs {comparison['ratio']:.1f}x the tokens of the trained BPE")

# %% [markdown]
# ## 2. The run
#
# The `train` parameters are the same fields as the YAML file the command line takes (`python -m vanilla_flash train
# --config $params`). Checkpoints go to `train.ckpt_dir` when the parameters give one, else to a folder
# of this run's own, named after its `run_dir` (on Colab, in Google Drive): run the notebook again after a disconnect
# and it continues from the last one.
#
# `train.attn` picks the attention. Set it to `from_scratch` to train with the FlashAttention you write in notebook 5
# (fp16, head dims 64 and 128; compiled on first use, which takes a minute or two): on the T4 stand-in, over the T4
# set's 600 steps, GPT-2's loss curve through it stayed as close to sdpa's as a second sdpa run's, taken over
# three seeds ([the kernel ladder](https://vanilla-flash.github.io/vanilla-flash/kernel-ladder/#training)).

# %% [markdown] lang="vi"
# ## 2. Chạy huấn luyện
#
# Tham số `train` là các trường của tệp YAML mà dòng lệnh dùng (`python -m vanilla_flash train --config
# $params`). Checkpoint được lưu vào `train.ckpt_dir` nếu tham số có; nếu không thì vào một thư mục
# riêng của lần chạy này, đặt tên theo `run_dir` của nó (trên Colab, trong Google Drive): mất kết nối thì chạy lại
# notebook, nó sẽ tiếp tục từ checkpoint cuối.
#
# `train.attn` chọn attention. Đặt nó là `from_scratch` để huấn luyện bằng FlashAttention mà bạn tự viết trong
# notebook 5 (fp16, head dim 64 và 128; biên dịch ở lần dùng đầu, mất một, hai phút): trên máy đóng vai T4, qua 600
# bước của bộ T4, đường loss của GPT-2 huấn luyện với nó sát đường của sdpa không kém một lần chạy sdpa thứ
# hai, tính chung ba seed
# ([chiếc thang kernel](https://vanilla-flash.github.io/vanilla-flash/vi/kernel-ladder/#training)).

# %%
from pathlib import Path

from vanilla_flash.config import TrainConfig
from vanilla_flash.training.run import train as run_training

cfg = TrainConfig.from_dict(train)
if cfg.ckpt_dir is None:  # a folder of this run's own, not one that every run of the set shares
    cfg.ckpt_dir = str(notebook.storage(f"checkpoints/$notebook_set/{Path(cfg.run_dir).name}"))
print(
    f"{cfg.model_label}, seq {cfg.seq_len}, batch {cfg.batch_size}, {cfg.max_steps} steps, "
    f"attention {cfg.attn}, tokenizer {cfg.tokenizer}, data {cfg.data_source}/{cfg.lang}"
)
print("checkpoints:", cfg.checkpoints)

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
from vanilla_flash.results import report

notebook.show(f"{cfg.run_dir}/loss.png")
final = summary["final"]
print("final:", ", ".join(f"{name} {value:.3f}" for name, value in final.items() if value is not None))
print(report.speed_line(summary))
print("sample:", summary["sample"])
