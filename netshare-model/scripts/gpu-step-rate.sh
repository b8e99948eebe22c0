#!/usr/bin/env bash
# Builds netshare-model with burn's CUDA backend and prints the training step rate at the
# `netshare` profile sizes on a GPU, next to the same step on the CPU (Flex) for scale.
#
#   netshare-model/scripts/gpu-step-rate.sh [ENCODED_DIR] [STEPS]
#
# ENCODED_DIR: the encoder's output for a trace (layout.json, train-000.safetensors); without
# it the benchmark uses random tensors of UGR16's shape. Run from anywhere in the repository.
# The CUDA build downloads an LLVM bundle in a build script (cubecl-llvm), so the first build
# needs network access; nvcc is not needed (kernels are compiled at run time through NVRTC).
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
encoded="${1:-}"
steps="${2:-300}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cargo build --release -p netshare-model --features cuda --example bench_train
bench=target/release/examples/bench_train
echo "== GPU (burn cuda), ${steps} generator steps =="
"$bench" ${encoded:+"$encoded"} --t 2 --profiles netshare --device cuda --steps "$steps" --warmup 20 --no-torch
echo "== CPU (burn flex, all cores), 20 generator steps =="
"$bench" ${encoded:+"$encoded"} --t 2 --profiles netshare --device cpu --steps 20 --warmup 3 --no-torch
