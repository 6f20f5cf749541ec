#!/usr/bin/env bash
# The README's GPU table (issue 16, item 3) in one call of a machine with an NVIDIA GPU: `xtask
# bench` on the `vulkan` device beside PyTorch on CUDA, at each precision given (default: f32
# bf16 f16 flex32). Ours at f32 is beside PyTorch at float32, ours at bf16/f16 beside PyTorch
# under `torch.autocast` of the same type, flex32 (ours only) beside float32. Each run records
# the machine, the build's features and PyTorch's TF32 setting in its JSON.
#
# Needs, in the repository's root: `.gpu/xtask.gz` from `xtask/gpu/prepare.sh` (run on a machine
# where it can be built), `.gl/` (the loaders it downloads; unpacked only where the machine has
# no Vulkan loader), and `python3` with torch for PyTorch's side.
#
# Usage, from the repository's root: xtask/gpu/measure.sh [PRECISION...]
# Writes into $OUT (the device tool's folder; target/gpu-bench elsewhere): machine.txt,
# PRECISION.json per run, and bench.log with every run's output. Each run is stopped after
# $RUN_SECONDS (default 140) so that four fit in one ten-minute call; a run stopped or failed
# is reported and the next one runs.
#
# Environment, for a smoke run elsewhere: XTASK (the binary), DEVICES (default vulkan),
# TORCH_DEVICE (default cuda), BENCH_ARGS (added to every bench, e.g. --quick).
set -uo pipefail
cd "$(dirname "$0")/../.."

out=${OUT:-target/gpu-bench}
mkdir -p "$out"
xtask=${XTASK:-}
devices=${DEVICES:-vulkan}
torch_device=${TORCH_DEVICE:-cuda}
run_seconds=${RUN_SECONDS:-140}
precisions=("$@")
[ ${#precisions[@]} -gt 0 ] || precisions=(f32 bf16 f16 flex32)
# PyTorch's side of each precision: float32, or autocast in the same type.
autocast_of() {
    case $1 in
        f32 | flex32) echo none ;;
        bf16 | f16) echo "$1" ;;
        *) return 1 ;;
    esac
}
for precision in "${precisions[@]}"; do
    if ! autocast_of "$precision" >/dev/null; then
        echo "error: unknown precision $precision (f32, bf16, f16, flex32)" >&2
        exit 2
    fi
done

if [ -z "$xtask" ]; then
    if [ ! -f .gpu/xtask.gz ]; then
        echo "error: .gpu/xtask.gz is missing: run xtask/gpu/prepare.sh first, and carry .gpu" >&2
        exit 2
    fi
    xtask=$(mktemp -d)/xtask
    gzip -dc .gpu/xtask.gz > "$xtask" && chmod +x "$xtask" || exit 2
fi

# Vulkan's loader: unpack the carried one where the machine has none.
if ! ldconfig -p 2>/dev/null | grep -q libvulkan; then
    if compgen -G ".gl/*.deb" >/dev/null; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    else
        echo "warning: no Vulkan loader on this machine and none in .gl/" >&2
    fi
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
    export VK_DRIVER_FILES=$icd
fi
export PYTHONUNBUFFERED=1

{
    date -u
    if command -v nvidia-smi >/dev/null; then nvidia-smi 2>&1; else echo "nvidia-smi: not found"; fi
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else "")' 2>&1
    lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\))'
} > "$out/machine.txt"

status=0
for precision in "${precisions[@]}"; do
    autocast=$(autocast_of "$precision")
    echo "== $precision: $xtask bench --devices $devices --torch-device $torch_device" \
        "--precision $precision --torch-autocast $autocast ${BENCH_ARGS:-}" | tee -a "$out/bench.log"
    start=$SECONDS
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
    timeout "$run_seconds" "$xtask" bench --devices "$devices" --torch-device "$torch_device" \
        --precision "$precision" --torch-autocast "$autocast" --out "$out/$precision.json" \
        ${BENCH_ARGS:-} >> "$out/bench.log" 2>&1
    code=$?
    echo "== $precision: exit $code after $((SECONDS - start)) s" | tee -a "$out/bench.log"
    [ $code -eq 0 ] || status=1
done
exit $status
