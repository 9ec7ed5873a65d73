# Several GPUs of one host (experiments/gpu_machine/driver.sh start experiments/multi_gpu/jobs.sh); staged: ds.
# DDP scaling against one GPU with the same global batch (one GPU accumulates 2 steps of 16; two GPUs run
# 16 each), and FSDP for 355M. NVLink multicast stays off in every process.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
train() {
  python3 -m vanilla_flash train --config configs/h100-124m.yaml --set attn=sdpa_cudnn compile=true \
    max_steps=200 progress_bar=false "$@"
}
job gpu1 train run_dir="$OUT_DIR/gpu1/run" devices=1 accumulate=2
job ddp2 train run_dir="$OUT_DIR/ddp2/run" devices=2 strategy=ddp
job fsdp2_355m train run_dir="$OUT_DIR/fsdp2_355m/run" model_size=355M devices=2 strategy=fsdp batch_size=8 \
  max_steps=50
