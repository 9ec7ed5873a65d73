# The flash-attn 1.x (T4) notebook set on a Hopper GPU standing in for a Colab T4
# (experiments/gpu_machine/driver.sh start experiments/t4_stand_in/jobs.sh [notebooks second_session]);
# staged: ds, nb, fa1.tar.gz. The four notebooks with t4.yaml, in order, with the GPU's memory capped at a
# T4's 15 GiB, the shipped sample instead of the Hub (no network there), and flash-attn 1.0.9 built by
# 02_build as compute_75 PTX only, which the driver compiles for the GPU when it loads (the Turing build,
# not an sm90 one); then 01_install again, as a second Colab session would open it; then the report
# (t4_twin.json). The last job, `ladder`, runs 05_from_scratch alone.
sets=(--set train.data_source=sample gpu_memory_gib=15 'fa1_archs=["compute_75"]' fa1_source="$IN/fa1.tar.gz")
# no flash-attn 4 on a T4: where the driver staged it for other jobs, these notebooks do not see it
t4_path=$(echo "$PYTHONPATH" | tr : '\n' | grep -v "$VF/fa4/" | paste -sd:)
job notebooks env PYTHONPATH="$t4_path" python3 -m vanilla_flash notebooks --target t4 --out "$OUT_DIR/nb" "${sets[@]}"
job second_session python3 -m vanilla_flash notebooks --target t4 --out "$OUT_DIR/nb_second_session" \
  notebooks/flash_attn_1/01_install.ipynb "${sets[@]}"
job report python3 experiments/t4_stand_in/report.py "$OUT_DIR"
# The kernel ladder of 05_from_scratch alone, on the T4's terms (its rungs built as compute_75 PTX), beside
# flash-attn 1.0.9 as a compute_75 wheel staged in fa1wheels/ (`... jobs.sh ladder`)
needs_fa1
job ladder python3 -m vanilla_flash notebooks --target t4 --out "$OUT_DIR/nb05" \
  notebooks/flash_attn_1/05_from_scratch.ipynb "${sets[@]}"
