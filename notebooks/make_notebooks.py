"""Write the notebook collection from one source: this file.

    python notebooks/make_notebooks.py            # (re)write notebooks/flash_attn_{1,2,4}/*.ipynb, no outputs
    python notebooks/make_notebooks.py --strip F  # drop run-specific metadata from executed notebooks

Three sets (one per flash-attn version) of four notebooks (install, build, train, benchmark). Every
prose cell is bilingual: English first, then Vietnamese. Code cells are short calls into the
`vanilla_flash` package; the logic lives there. The `parameters` cell of every notebook holds the CPU
values of notebooks/params/cpu.yaml; papermill replaces them with another target's file, and on
Colab the set's own GPU file is loaded instead.
"""

from __future__ import annotations

import argparse
import pprint
import re
import sys
import tomllib
from pathlib import Path

import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
GITHUB_PATH = REPO_URL.removeprefix("https://github.com/")
IGNORE = ["nbval-ignore-output"]  # outputs that change from run to run: timings, losses, versions

SETS = {
    "flash_attn_1": {
        "version": "1.x",
        "params": "t4",
        "requirements": "requirements-t4.txt",
        "backend": "flash_attn_1",
        "gpu_en": "a Turing GPU: Colab's free **T4** (compute capability 7.5), float16",
        "gpu_vi": "GPU thế hệ Turing: **T4** miễn phí của Colab (compute capability 7.5), float16",
    },
    "flash_attn_2": {
        "version": "2.x",
        "params": "ampere",
        "requirements": "requirements-ampere.txt",
        "backend": "flash_attn_2",
        "gpu_en": "an Ampere or Ada GPU: **A100, L4, RTX 30/40** (compute capability 8.0-8.9), bfloat16",
        "gpu_vi": "GPU Ampere hoặc Ada: **A100, L4, RTX 30/40** (compute capability 8.0-8.9), bfloat16",
    },
    "flash_attn_4": {
        "version": "4",
        "params": "hopper",
        "requirements": "requirements-hopper.txt",
        "backend": "flash_attn_4",
        "gpu_en": "a Hopper or Blackwell GPU: **H100, H200, B200** (compute capability 9.0-10.3), bfloat16",
        "gpu_vi": "GPU Hopper hoặc Blackwell: **H100, H200, B200** (compute capability 9.0-10.3), bfloat16",
    },
}


def md(en: str, vi: str):
    return new_markdown_cell(f"{en.strip()}\n\n---\n*Tiếng Việt.* {vi.strip()}")


def code(source: str, ignore: bool = False, tags: list[str] | None = None):
    cell = new_code_cell(source.strip())
    cell.metadata["tags"] = (tags or []) + (IGNORE if ignore else [])
    return cell


def badge(set_name: str, name: str) -> str:
    url = f"https://colab.research.google.com/github/{GITHUB_PATH}/blob/main/notebooks/{set_name}/{name}.ipynb"
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def parameters_cell():
    values = yaml.safe_load((HERE / "params" / "cpu.yaml").read_text())
    lines = ["# Parameters: CPU-safe defaults. papermill replaces them with notebooks/params/<target>.yaml",
             "# (make run-t4 / run-ampere / run-hopper); on Colab the next cell loads this set's GPU file."]  # fmt: skip
    for key, value in values.items():
        lines.append(f"{key} = {pprint.pformat(value, width=100, sort_dicts=False)}")
    return code("\n".join(lines), tags=["parameters"])


def setup_cells(s: dict):
    bootstrap = f'''
# On Colab: fetch the repository and install the library next to Colab's own torch (never replacing it).
import os
import subprocess
import sys

REPO_URL = "{REPO_URL}"
if "COLAB_RELEASE_TAG" in os.environ and not os.path.exists("pyproject.toml"):
    if not os.path.exists("vanilla-flash"):
        subprocess.run(["git", "clone", "--depth=1", REPO_URL, "vanilla-flash"], check=True)
    os.chdir("vanilla-flash")
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", "{s["requirements"]}", "-e", "."], check=True)
'''
    enter = f'''
from vanilla_flash import notebook

root = notebook.enter_repo()  # work from the repository root, whatever started this notebook
if notebook.env.in_colab():  # opened in Colab, not run by papermill: use this set's GPU parameters
    globals().update(notebook.params("{s["params"]}"))
print("target:", target)
'''
    return [code(bootstrap), code(enter)]


def intro(s: dict, name: str, title_en: str, title_vi: str, teaches_en: str, teaches_vi: str):
    head = f"# flash-attn {s['version']} · {title_en}\n\n{badge(name, NB_NAMES[title_en])}\n\n"
    return new_markdown_cell(
        head
        + f"{teaches_en.strip()}\n\n**Expected GPU:** {s['gpu_en']}. On a machine without it the notebook still runs "
        "(CPU parameters, dry runs), so every cell can be read and checked.\n\n---\n"
        + f"## {title_vi}\n\n{teaches_vi.strip()}\n\n**GPU dự kiến:** {s['gpu_vi']}. Trên máy không có GPU đó, "
        "notebook vẫn chạy được (tham số CPU, chạy thử), nên mọi ô đều đọc và kiểm tra được."
    )


NB_NAMES = {"Install": "01_install", "Build": "02_build", "Train GPT-2 on Wikisource": "03_train_wikisource",
            "Benchmark": "04_benchmark"}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# 01 install


def install_nb(name: str, s: dict):
    return [
        intro(
            s,
            name,
            "Install",
            "Cài đặt",
            "What this machine is, what it needs for FlashAttention, installing it (a second run is a no-op), "
            "and a real kernel call checked against an fp32 reference.",
            "Máy này là gì, cần gì để chạy FlashAttention, cài đặt (chạy lần hai không làm lại gì), rồi gọi "
            "kernel thật và so với kết quả tham chiếu fp32.",
        ),  # fmt: skip
        parameters_cell(),
        *setup_cells(s),
        md(
            "## 1. What is this machine?\n\nThe environment report reads the GPU, its compute capability and "
            "memory, the driver, CUDA, torch, cuDNN and Triton versions, and which flash-attn is installed. On "
            "Colab it also points Triton at Colab's `libcuda.so`, in this process (the seed's first error: "
            "`libcuda.so cannot found`; an `!export` in a cell would change nothing for later cells).",
            "## 1. Máy này là gì?\n\nBáo cáo môi trường đọc GPU, compute capability, bộ nhớ, phiên bản driver, "
            "CUDA, torch, cuDNN, Triton và flash-attn đã cài. Trên Colab nó còn chỉ cho Triton chỗ của "
            "`libcuda.so` ngay trong tiến trình này (lỗi đầu tiên của ghi chép gốc: `libcuda.so cannot found`; "
            "`!export` trong một ô không có tác dụng với các ô sau).",
        ),  # fmt: skip
        code("from vanilla_flash import env, install\n\nreport = env.describe()\nprint(report)", ignore=True),
        code(
            "runs_here = [name for name, why in report.backends.items() if why is None]\n"
            'print("attention backends that run here:", ", ".join(runs_here))\n'
            'print("auto picks (head dim 64, seq 1024):", report.auto_pick)'
        ),  # fmt: skip
        md(
            "Every backend that cannot run here says why, in a sentence you can act on (see the table above).",
            "Mỗi backend không chạy được ở đây đều nói lý do bằng một câu bạn làm theo được (bảng ở trên).",
        ),
        md("## 2. What does this GPU need?", "## 2. GPU này cần gì?"),
        code("plan = install.plan(report.machine, target)\nprint(plan)"),
        md(
            "## 3. Install\n\n`install.ensure` installs only what is missing, with `pip` calls that fail loudly (a "
            "failing `!pip` line does not fail its cell, so the notebook would go on as if nothing happened).",
            "## 3. Cài đặt\n\n`install.ensure` chỉ cài những gì còn thiếu, và lệnh `pip` nào lỗi sẽ báo lỗi rõ ràng "
            "(một dòng `!pip` lỗi không làm ô đó lỗi, notebook sẽ chạy tiếp như không có chuyện gì).",
        ),  # fmt: skip
        code('print(install.ensure(plan, cache_dir=notebook.storage("wheels")))'),
        md(
            "## 4. A real kernel call\n\nThe backend this GPU runs best, forward and backward on random inputs, "
            "compared with attention computed in fp32. On CPU this checks PyTorch's SDPA instead.",
            "## 4. Gọi kernel thật\n\nBackend tốt nhất cho GPU này chạy xuôi và ngược trên đầu vào ngẫu nhiên, so "
            "với attention tính bằng fp32. Trên CPU, bước này kiểm tra SDPA của PyTorch.",
        ),  # fmt: skip
        code("rows = notebook.verify(plan.backend)", ignore=True),
        code('for r in rows:\n    print(f"{r.backend:<14} {r.dtype:<9} {r.shape:<28} {r.status}")'),
    ]


# ---------------------------------------------------------------------------------------------
# 02 build


def build_nb(name: str, s: dict):
    cells = [
        intro(s, name, "Build", "Biên dịch", *BUILD_TEACHES[name]),
        parameters_cell(),
        *setup_cells(s),
        code(
            "from vanilla_flash import env, install\n\nmachine = env.probe()\nprint(install.plan(machine, target))",
            ignore=True,
        ),
    ]
    if name == "flash_attn_1":
        cells += [
            md(
                "## Why build at all?\n\nflash-attn 1.x publishes no wheels: `pip install flash-attn==1.0.9` compiles "
                "it, about 15 minutes on Colab's 2 cores. Three things make that bearable: **ninja** (without it "
                "torch compiles one file at a time), **MAX_JOBS** sized from cores *and* RAM (each compiler job "
                "needs a few GiB; too many and the build is killed halfway), and compiling **only this GPU's "
                "architecture** (sm75 on a T4) instead of sm75, sm80 and sm90. The wheel goes to a cache folder on "
                "Google Drive, so the next Colab session installs it in seconds.",
                "## Vì sao phải biên dịch?\n\nflash-attn 1.x không có wheel dựng sẵn: `pip install flash-attn==1.0.9` "
                "sẽ biên dịch, mất khoảng 15 phút với 2 nhân CPU của Colab. Ba điều giúp việc này chịu được: "
                "**ninja** (thiếu nó torch biên dịch từng tệp một), **MAX_JOBS** tính theo số nhân *và* RAM (mỗi "
                "tiến trình biên dịch cần vài GiB; quá nhiều thì bản build bị giết giữa chừng), và chỉ biên dịch "
                "**đúng kiến trúc của GPU này** (sm75 trên T4) thay vì cả sm75, sm80 và sm90. Wheel được lưu vào "
                "thư mục cache trên Google Drive, phiên Colab sau cài lại trong vài giây.",
            ),  # fmt: skip
            code(
                'print("ninja:", "found" if install.ninja_ok() else "missing")\nprint("MAX_JOBS:", install.max_jobs())',
                ignore=True,
            ),  # fmt: skip
            code(
                'can_build = machine.device == "cuda"\n'
                'result = install.build_fa1(notebook.storage("wheels"), source=fa1_source, archs=fa1_archs,\n'
                "                           dry_run=not can_build)\n"
                "if result.wheel and machine.flash_attn_major() != 1:\n"
                "    install.install_cached(result.wheel)",
                ignore=True,
            ),  # fmt: skip
        ]
    elif name == "flash_attn_2":
        cells += [
            md(
                "## A wheel, not a build\n\nflash-attn 2.x compiles about 80 CUDA files: over an hour even on a big "
                "machine. Its GitHub releases carry prebuilt wheels whose *file name* says what they were built for: "
                "flash-attn version, CUDA major version, torch major.minor, C++ ABI and Python. The one that matches "
                "this torch installs in seconds; a mismatched one fails on import with `undefined symbol`.",
                "## Dùng wheel, không biên dịch\n\nflash-attn 2.x phải biên dịch khoảng 80 tệp CUDA: hơn một giờ kể cả "
                "trên máy mạnh. Trang release trên GitHub có wheel dựng sẵn, *tên tệp* cho biết nó được dựng cho gì: "
                "phiên bản flash-attn, CUDA, torch (major.minor), C++ ABI và Python. Wheel khớp với torch này cài "
                "trong vài giây; wheel không khớp sẽ lỗi `undefined symbol` khi import.",
            ),  # fmt: skip
            code("wheel = install.fa2_wheel(machine)\nprint(wheel)\nprint(install.fa2_wheel_url(wheel))", ignore=True),
        ]
    else:
        cells += [
            md(
                "## Nothing to compile\n\nflash-attn 4 is written in CuTe DSL (Python): `pip install flash-attn-4` "
                "brings wheels, and each kernel is compiled just in time the first time a shape is seen (seconds), "
                "then cached. On an H100 the first training step is therefore slower than the rest.",
                "## Không cần biên dịch\n\nflash-attn 4 được viết bằng CuTe DSL (Python): `pip install flash-attn-4` "
                "tải wheel về, và mỗi kernel được biên dịch tức thời (JIT) lần đầu gặp một kích thước mới (vài giây), "
                "rồi lưu cache. Vì vậy trên H100 bước huấn luyện đầu tiên chậm hơn các bước sau.",
            ),  # fmt: skip
        ]
    cells += [
        md("## The fused extensions the seed tried to build", "## Các extension hợp nhất mà ghi chép gốc đã thử build"),
        code("print(install.extension_note())"),
    ]
    if name == "flash_attn_1":
        cells += [
            md(
                "### Optional: build them anyway\n\nflash-attn's own GPT model (`model_impl: flash_attn` in the "
                "training parameters) can use them. `fa1_extensions` lists the ones to build, each timed, with its "
                "log, for this GPU's architecture only, cached like the main wheel. `dropout_layer_norm` is the long "
                "one: build it last, on a machine with many cores.",
                "### Tùy chọn: vẫn build chúng\n\nMô hình GPT riêng của flash-attn (`model_impl: flash_attn` trong "
                "tham số huấn luyện) có thể dùng chúng. `fa1_extensions` liệt kê những extension cần build, mỗi cái "
                "đều được đo thời gian, có log, chỉ cho kiến trúc của GPU này, và được cache như wheel chính. "
                "`dropout_layer_norm` là cái lâu nhất: để nó sau cùng, trên máy nhiều nhân CPU.",
            ),
            md(
                "**Measured on an H100 (16 cores, sm90 only, `MAX_JOBS=16`):** `fused_dense_lib` built in 85 s, "
                "`xentropy_cuda_lib` 56 s, `rotary_emb` 79 s, `dropout_layer_norm` 592 s (62 files; on Colab's 2 "
                "cores, roughly 80 minutes by that count). In one run, flash-attn's GPT-2 124M trained at 271.7k "
                "tokens/s with none of them, 177.0k with `fused_bias_fc`, `fused_mlp` and `fused_xentropy` on, and "
                "190.4k with `fused_dropout_add_ln` added (Hugging Face's GPT-2: 168.2k). The verdict: the model is "
                "worth it, the extensions are not (`results/h100/fa_gpt/`). Not run on a real T4.",
                "**Số đo trên H100 (16 nhân, chỉ sm90, `MAX_JOBS=16`):** `fused_dense_lib` build mất 85 giây, "
                "`xentropy_cuda_lib` 56 giây, `rotary_emb` 79 giây, `dropout_layer_norm` 592 giây (62 tệp; với 2 "
                "nhân của Colab, ước chừng 80 phút). Trong cùng một lần chạy, GPT-2 124M của flash-attn đạt 271,7 "
                "nghìn token/s khi không dùng extension nào, 177,0 nghìn khi bật `fused_bias_fc`, `fused_mlp` và "
                "`fused_xentropy`, và 190,4 nghìn khi bật thêm `fused_dropout_add_ln` (GPT-2 của Hugging Face: "
                "168,2 nghìn). Kết luận: bản thân mô hình đáng dùng, còn các extension thì không "
                "(`results/h100/fa_gpt/`). Chưa chạy trên T4 thật.",
            ),
            code("print(install.extension_plan(fa1_extensions))"),
            code(
                "for extension in fa1_extensions:\n"
                '    install.build_fa1_extension(extension, fa1_source, notebook.storage("wheels"), archs=fa1_archs,\n'
                "                                dry_run=not can_build)",
                ignore=True,
            ),
        ]

    return cells


BUILD_TEACHES = {
    "flash_attn_1": ("Building flash-attn 1.0.9 from source once, quickly, with a visible timed log, and keeping the "
                     "wheel so the next Colab session reinstalls it in seconds.",
                     "Biên dịch flash-attn 1.0.9 từ mã nguồn một lần, nhanh, có log và thời gian rõ ràng, rồi giữ "
                     "lại wheel để phiên Colab sau cài lại trong vài giây."),
    "flash_attn_2": ("Finding the prebuilt flash-attn 2 wheel that matches this torch, and why building it from "
                     "source is the last resort.",
                     "Tìm wheel flash-attn 2 dựng sẵn khớp với torch đang có, và vì sao biên dịch từ mã nguồn là "
                     "lựa chọn cuối cùng."),
    "flash_attn_4": ("Why flash-attn 4 needs no build step, and what its just-in-time compilation means for the first "
                     "steps.",
                     "Vì sao flash-attn 4 không cần bước biên dịch, và việc biên dịch tức thời (JIT) ảnh hưởng gì đến "
                     "các bước đầu."),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# 03 train


def train_nb(name: str, s: dict):
    return [
        intro(
            s,
            name,
            "Train GPT-2 on Wikisource",
            "Huấn luyện GPT-2 trên Wikisource",
            "GPT-2 trained on Vietnamese Wikisource through PyTorch Lightning, with the attention backend this "
            "GPU runs best, the precision chosen from the hardware (so nothing is ever cast by hand), checkpoints "
            "that survive a dead Colab session, a loss curve and generated text.",
            "Huấn luyện GPT-2 trên Wikisource tiếng Việt bằng PyTorch Lightning, với backend attention tốt nhất "
            "cho GPU này, độ chính xác (precision) chọn theo phần cứng (không bao giờ ép kiểu bằng tay), "
            "checkpoint sống sót khi phiên Colab chết, đường cong loss và văn bản sinh ra.",
        ),  # fmt: skip
        parameters_cell(),
        *setup_cells(s),
        md(
            "## 1. Tokens per word\n\nGPT-2's BPE was trained on English web text: Vietnamese costs it several tokens "
            "per word. A byte-level BPE trained on the training split needs far fewer, which means more text per "
            "block of `seq_len` tokens.",
            "## 1. Số token mỗi từ\n\nBPE của GPT-2 được huấn luyện trên văn bản web tiếng Anh: với tiếng Việt nó tốn "
            "nhiều token cho mỗi từ. Một BPE mức byte huấn luyện trên tập train cần ít token hơn hẳn, nghĩa là mỗi "
            "khối `seq_len` token chứa được nhiều chữ hơn.",
        ),  # fmt: skip
        code(
            'from vanilla_flash import data\n\ncomparison = data.compare_tokenizers("vi", vocab_size=4096)', ignore=True
        ),
        code(
            'for tokenizer, per_word in comparison["tokens_per_word"].items():\n'
            '    print(f"{tokenizer:<18} {per_word:.2f} tokens/word")\n'
            "print(f\"GPT-2 needs {comparison['ratio']:.1f}x the tokens\")"
        ),  # fmt: skip
        md(
            "## 2. The run\n\nThe `train` parameters are the same fields as the YAML file the command line takes "
            "(`python -m vanilla_flash train --config notebooks/params/t4.yaml`). Checkpoints go to Google Drive on "
            "Colab: run the notebook again after a disconnect and it continues from the last one.",
            "## 2. Chạy huấn luyện\n\nTham số `train` là các trường của tệp YAML mà dòng lệnh dùng "
            "(`python -m vanilla_flash train --config notebooks/params/t4.yaml`). Trên Colab checkpoint được lưu "
            "vào Google Drive: mất kết nối thì chạy lại notebook, nó sẽ tiếp tục từ checkpoint cuối.",
        ),  # fmt: skip
        code(
            f"from vanilla_flash.train import TrainConfig\nfrom vanilla_flash.train import train as run_training\n\n"
            f'cfg = TrainConfig.from_dict({{**train, "ckpt_dir": str(notebook.storage("checkpoints/{name}"))}})\n'
            f'print(f"GPT-2 {{cfg.model_size}}, seq {{cfg.seq_len}}, batch {{cfg.batch_size}}, {{cfg.max_steps}} steps, "\n'
            f'      f"attention {{cfg.attn}}, tokenizer {{cfg.tokenizer}}, data {{cfg.data_source}}/{{cfg.lang}}")'
        ),  # fmt: skip
        code("summary = run_training(cfg)", ignore=True),
        code(
            'print("steps:", summary["steps"])\nprint("attention:", summary["attention"])\n'
            'print("precision:", summary["precision"])'
        ),  # fmt: skip
        md("## 3. What happened", "## 3. Kết quả"),
        code(
            'notebook.show(f"{cfg.run_dir}/loss.png")\nprint("final:", summary["final"])\n'
            "print(f\"tokens/s: {summary['tokens_per_s'] or 0:,.0f}   MFU: {summary['mfu'] or 0:.1%}   \"\n"
            '      f"peak memory: {summary[\'peak_mem_gib\'] or 0:.1f} GiB")\nprint("sample:", summary["sample"])',
            ignore=True,
        ),  # fmt: skip
    ]


# ---------------------------------------------------------------------------------------------
# 04 benchmark


def bench_nb(name: str, s: dict):
    return [
        intro(
            s,
            name,
            "Benchmark",
            "Đo hiệu năng",
            "Every attention backend that runs here, first checked against an fp32 reference, then timed forward "
            "and backward; GPT-2 training speed per backend; plots; and the committed H100 reference to compare.",
            "Mọi backend attention chạy được ở đây, kiểm tra đúng với tham chiếu fp32 trước, rồi đo thời gian "
            "xuôi và ngược; tốc độ huấn luyện GPT-2 theo từng backend; biểu đồ; và kết quả tham chiếu trên H100 "
            "đã lưu trong repo để so sánh.",
        ),  # fmt: skip
        parameters_cell(),
        *setup_cells(s),
        md("## 1. Attention kernels", "## 1. Các kernel attention"),
        code(
            "import json\nfrom pathlib import Path\n\nfrom vanilla_flash import bench, report\n\n"
            'out = Path(train["run_dir"]).parent / "bench"\nout.mkdir(parents=True, exist_ok=True)\n'
            'points = bench.attention_grid(seq_lens=benchmark["seq_lens"], head_dims=benchmark["head_dims"],\n'
            '                              dtypes=benchmark["dtypes"], tokens=benchmark["tokens"],\n'
            '                              hidden=benchmark["hidden"], repeats=benchmark["repeats"])',
            ignore=True,
        ),  # fmt: skip
        code(
            "result = bench.attention_result(points)\n"
            '(out / "attention.json").write_text(json.dumps(result, indent=2))\n'
            'for r in result["auto"]:\n'
            "    print(f\"seq {r['seq']:>5}: auto runs {r['auto_picked']}, fastest {r['fastest']}, ratio {r['ratio']:.2f}\")\n"
            "for path in report.attention_plots(result, out):\n    notebook.show(path)",
            ignore=True,
        ),  # fmt: skip
        md("## 2. Training speed per backend", "## 2. Tốc độ huấn luyện theo backend"),
        code(
            'rows = bench.train_grid(benchmark["train_size"], seq_lens=benchmark["train_seq_lens"],\n'
            '                       tokens_per_step=benchmark["train_tokens"], steps=benchmark["train_steps"])\n'
            'print(report.train_table({"rows": rows}))',
            ignore=True,
        ),  # fmt: skip
        md(
            "## 3. The H100 reference in the repository\n\nMeasured by this project on one H100 (files under "
            "`results/h100/`, with their environment).",
            "## 3. Kết quả tham chiếu trên H100 trong repo\n\nDự án đã đo trên một H100 (các tệp trong "
            "`results/h100/`, kèm môi trường đo).",
        ),  # fmt: skip
        code(
            'runs = sorted(Path("results/h100/train_124m").glob("*/summary.json"))\n'
            "print(report.runs_table([p.parent for p in runs]))\n"
            'for name in ("b16", "b32"):\n'
            '    print(report.overhead_table(json.loads(Path(f"results/h100/overhead/{name}.json").read_text())))\n'
            'print(report.train_table(json.loads(Path("results/h100/train_bench.json").read_text())))'
        ),  # fmt: skip
        code(
            'notebook.show("scr/img/train_loss_curves.png")\nnotebook.show("scr/img/attention_tflops_bfloat16.png")',
            ignore=True,
        ),  # fmt: skip
    ]


BUILDERS = {"01_install": install_nb, "02_build": build_nb, "03_train_wikisource": train_nb, "04_benchmark": bench_nb}


def write_all() -> list[Path]:
    paths = []
    for set_name, s in SETS.items():
        folder = HERE / set_name
        folder.mkdir(exist_ok=True)
        for nb_name, builder in BUILDERS.items():
            nb = new_notebook(cells=builder(set_name, s))
            nb.metadata = {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python"},
                "accelerator": "GPU",
                "colab": {"provenance": []},
            }
            path = folder / f"{nb_name}.ipynb"
            nbformat.write(nb, path)
            paths.append(path)
    return paths


def strip(path: Path) -> None:
    """Keep outputs, drop what changes on every run: execution times, papermill metadata, kernel
    versions; and the cell papermill injects (the parameters cell already holds the same values)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [_clean_output(o) for o in cell.outputs]
    nb.metadata.pop("papermill", None)
    nb.metadata.get("language_info", {}).pop("version", None)
    nbformat.write(nb, path)


def _clean_output(output):
    """No colour codes, and no absolute paths of the machine that ran the notebook."""
    if output.get("output_type") == "stream":
        text = re.sub(r"\x1b\[[0-9;]*m", "", output["text"])
        output["text"] = text.replace(f"{ROOT}/", "").replace(str(Path.home()), "~")
    return output


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strip", nargs="*", metavar="NOTEBOOK", help="strip run metadata from executed notebooks")
    args = p.parse_args()
    if args.strip is not None:
        for path in args.strip:
            strip(Path(path))
        return 0
    for path in write_all():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
