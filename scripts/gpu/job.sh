# Sourced by the job lists (run from the repository root by session.sh):
#   job NAME COMMAND...   runs COMMAND with its output in $OUT_DIR/NAME/log.txt and appends
#                         "NAME <exit status> <seconds>s" to $OUT_DIR/status
job() {
  local name=$1; shift
  mkdir -p "$OUT_DIR/$name"
  local start=$(date +%s)
  ( "$@" ) > "$OUT_DIR/$name/log.txt" 2>&1
  echo "$name $? $(( $(date +%s) - start ))s" >> "$OUT_DIR/status"
}
