# Sourced by the job lists (run from the repository root by session.sh):
#   job NAME COMMAND...   runs COMMAND with its output in $OUT_DIR/NAME/log.txt and appends
#                         "NAME <exit status> <seconds>s matmul <TFLOP/s before>/<after>" to $OUT_DIR/status
# The bf16 8192^3 matmul rate before and after each job tells a healthy GPU (about 760 TFLOP/s on an
# H100) from a slowed or shared one, whose timings would not be worth keeping.
matmul_tflops() {
  python3 -c "
import time, torch
a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16); b = torch.randn_like(a)
for _ in range(5): a @ b
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): a @ b
torch.cuda.synchronize(); print(round(2 * 8192**3 * 20 / (time.perf_counter() - t) / 1e12))" 2>/dev/null
}
job() {
  local name=$1; shift
  mkdir -p "$OUT_DIR/$name"
  local before=$(matmul_tflops) start=$(date +%s)
  ( "$@" ) > "$OUT_DIR/$name/log.txt" 2>&1
  local status=$? seconds=$(( $(date +%s) - start ))
  echo "$name $status ${seconds}s matmul ${before}/$(matmul_tflops)" >> "$OUT_DIR/status"
}
