#!/usr/bin/env bash
# On the lent GPU machine (see docs/gpu.md), from the repository root, with .gpu and .gl
# carried: installs the Vulkan loader, checks that wgpu sees the NVIDIA GPU, then measures the
# training step of this project and of PyTorch on the same GPU. Markdown goes to stdout and to
# $OUT/gpu-bench.md.
# Each bench runs under `timeout ${BENCH_TIMEOUT:-400}` seconds.
# Environment: SECTIONS (default "features main cifar"; one device call runs at most 10
# minutes, so the sections can be run in separate calls), STEPS (timed steps per rule, default
# 30), MODELS (default "resnet18 resnet50"), BATCHES (default "64 256"), RULES (default
# bp,fa,ss,wm,kp).
#   features  the builds side by side (fusion, no fusion, fusion + vulkan) and the conv input
#             gradient's two kernels, and the forward convs by Burn's forward kernel instead
#             of its input-gradient kernel: all (burn-forward) or the strided ones (stride1),
#             on ResNet-18 at 224x224, batch 64; BUILDS (default
#             "biofeedback biofeedback-plain biofeedback-vulkan transpose stride1 burn-forward"), FEATURE_RULES
#             (default bp,wm)
#   profile   cubecl's per-kernel GPU time summary and autotune's choices for one bench
#             (default build, ResNet-18 224x224 batch 64, PROFILE_RULES, default bp) into
#             $OUT/kernels.log and $OUT/autotune.log
#   main      ResNet-18 and ResNet-50 at 224x224, every batch and rule, beside PyTorch
#   cifar     a CIFAR-10 ResNet-18 (width 64) at 32x32 and the epoch time it implies
#   train     real training on the GPU from an image folder: configs/cifar10-folder-resnet18-
#             {bp,kp}.toml at width 64 (JPEG decoding by the loader threads, evaluation,
#             checkpoints), when the sample is carried in .data (pack.sh copies it there);
#             TRAIN_EPOCHS (default 15)
set -uo pipefail
OUT=${OUT:-.}
SECTIONS=${SECTIONS:-"features main cifar"}
STEPS=${STEPS:-30}
MODELS=${MODELS:-"resnet18 resnet50"}
BATCHES=${BATCHES:-"64 256"}
RULES=${RULES:-bp,fa,ss,wm,kp}
BUILDS=${BUILDS:-"biofeedback biofeedback-plain biofeedback-vulkan transpose stride1 burn-forward"}
FEATURE_RULES=${FEATURE_RULES:-bp,wm}
PROFILE_RULES=${PROFILE_RULES:-bp}
report="$OUT/gpu-bench.md"
: > "$report"
say() { echo "$@" | tee -a "$report"; }
has() { [[ " $SECTIONS " == *" $1 "* ]]; }

for f in .gl/*.deb; do dpkg -x "$f" / ; done
ldconfig
# The machine has no zstd; xz-compressed binaries unpack with xz, or Python's lzma.
for build in biofeedback biofeedback-plain biofeedback-vulkan; do
  if [[ -f ".gpu/$build.xz" ]]; then
    if command -v xz >/dev/null; then
      xz -d -c ".gpu/$build.xz" > "/tmp/$build"
    else
      python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        ".gpu/$build.xz" "/tmp/$build"
    fi
    chmod +x "/tmp/$build"
  fi
done
if [[ ! -x /tmp/biofeedback ]]; then
  echo "run.sh: .gpu/biofeedback.xz was not carried (bash benches/gpu/pack.sh; carry .gpu)" >&2
  exit 1
fi
bf=/tmp/biofeedback

say "## GPU bench, $(date -u +%F), sections: $SECTIONS"
say
say '```'
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$report"
python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda)' 2>&1 | tee -a "$report"
say '```'

# Which adapter does wgpu pick? A software renderer means the NVIDIA ICD was not found.
probe() { "$1" bench --device wgpu --model mlp --batch-size 8 --steps 1 --warmup 0 --rounds 1 --rules bp 2>&1 | grep -m1 "device "; }
line=$(probe "$bf")
if [[ -z "$line" || "$line" == *"software renderer"* ]]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [[ -f "$icd" ]]; then export VK_DRIVER_FILES="$icd"; break; fi
  done
  line=$(probe "$bf")
fi
say "wgpu adapter: ${line#*device }"
say

# ResNet-18 at 224x224, batch 64, bp and wm, under each build; then the conv delta through B by
# conv_transpose2d instead of Burn's dedicated conv2d_x_backward kernel (the default).
step224() {
  timeout "${BENCH_TIMEOUT:-400}" "$@" bench --device wgpu --model resnet18 --image-size 224 \
    --batch-size 64 --steps "$STEPS" --warmup 5 --rounds 5 --rules "$FEATURE_RULES" \
    2>>"$OUT/bench.log" | tee -a "$report"
  say
}
if has features; then
  for build in $BUILDS; do
    if [[ $build == burn-forward ]]; then
      say "### Build biofeedback, stride-1 forward convs by Burn's forward kernel (BIOFEEDBACK_GPU_CONV=burn)"
      say
      step224 env BIOFEEDBACK_GPU_CONV=burn "$bf"
      continue
    fi
    if [[ $build == stride1 ]]; then
      say "### Build biofeedback, strided forward convs by Burn's forward kernel (BIOFEEDBACK_GPU_CONV=stride1)"
      say
      step224 env BIOFEEDBACK_GPU_CONV=stride1 "$bf"
      continue
    fi
    if [[ $build == transpose ]]; then
      say "### Build biofeedback, conv input gradient by conv_transpose2d (BIOFEEDBACK_GPU_CONV_X=transpose)"
      say
      step224 env BIOFEEDBACK_GPU_CONV_X=transpose "$bf"
      continue
    fi
    [[ -x "/tmp/$build" ]] || { say "### Build $build: not carried"; say; continue; }
    say "### Build $build: $(probe "/tmp/$build" | sed 's/.*device //')"
    say
    step224 "/tmp/$build"
  done
fi

# Where a step's GPU time goes: cubecl's profiling summary of every kernel (the default build,
# ResNet-18 at 224x224, batch 64, bp) and autotune's choices, from a cubecl.toml in a scratch
# directory (cubecl reads it from the working directory).
if has profile; then
  prof=$(mktemp -d)
  cat > "$prof/cubecl.toml" <<TOML
[profiling.logger]
level = "basic"
file = "$OUT/kernels.log"
append = false

[autotune.logger]
level = "minimal"
file = "$OUT/autotune.log"
append = false
TOML
  say "### Kernel profile: $PROFILE_RULES, ResNet-18 224x224 batch 64 (\$OUT/kernels.log, \$OUT/autotune.log)"
  (cd "$prof" && timeout "${BENCH_TIMEOUT:-400}" "$bf" bench --device wgpu --model resnet18 \
    --image-size 224 --batch-size 64 --steps 4 --warmup 2 --rounds 1 --rules "$PROFILE_RULES" \
    2>>"$OUT/bench.log" | tee -a "$report")
  for f in "$OUT/kernels.log" "$OUT/autotune.log"; do
    [[ -f $f ]] && truncate -s '<15M' "$f"
  done
fi

if has main; then
  for model in $MODELS; do
    for batch in $BATCHES; do
      say "### $model, 224x224, batch $batch"
      say
      "$bf" bench --device wgpu --model "$model" --image-size 224 --batch-size "$batch" \
        --steps "$STEPS" --warmup 5 --rounds 5 --rules "$RULES" 2>>"$OUT/bench.log" | tee -a "$report"
      say
      python3 benches/peers/train_step.py --device cuda --model "$model" --image-size 224 \
        --batch-size "$batch" --steps "$STEPS" --header 2>>"$OUT/bench.log" | tee -a "$report"
      python3 benches/peers/train_step.py --device cuda --model "$model" --image-size 224 \
        --batch-size "$batch" --steps "$STEPS" --tf32 2>>"$OUT/bench.log" | tee -a "$report"
      say
    done
  done
fi

# CIFAR-10 ResNet-18 (width 64, 32x32 stem), batch 128: an epoch of 50,000 images at this rate.
if has cifar; then
  say "### CIFAR-10 ResNet-18 (width 64, cifar stem), 32x32, batch 128"
  say
  "$bf" bench --device wgpu --model resnet18 --stem cifar --image-size 32 --batch-size 128 \
    --classes 10 --steps "$STEPS" --warmup 5 --rules bp,kp --json 2>>"$OUT/bench.log" > "$OUT/cifar.json"
  python3 - "$OUT/cifar.json" <<'PY' | tee -a "$report"
import json, sys
r = json.load(open(sys.argv[1]))
for row in r["rows"]:
    print(f"- {row['rule']}: {row['images_per_second']:.0f} img/s, epoch of 50,000 images "
          f"{50000 / row['images_per_second']:.1f} s")
PY
  python3 benches/peers/train_step.py --device cuda --model resnet18 --stem cifar --image-size 32 \
    --batch-size 128 --classes 10 --steps "$STEPS" --header 2>>"$OUT/bench.log" | tee -a "$report"
fi

# Real training from JPEGs on the GPU: the loader, the step, the evaluation and the
# checkpoints together, with the loader given most of the machine's cores.
if has train; then
  data=.data/cifar10-folder-sample
  if [[ ! -d "$data" ]]; then
    say "train: $data was not carried (pack.sh copies it; carry .data)"
  else
    workers=$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))
    say "### Training from an image folder on the GPU: ResNet-18 (width 64, cifar stem), ${TRAIN_EPOCHS:-15} epochs, $workers loader threads"
    say
    runs=()
    for rule in bp kp; do
      dir=/tmp/train-$rule
      start=$(date +%s)
      "$bf" train --config "configs/cifar10-folder-resnet18-$rule.toml" --device wgpu \
        --set "data.dir=\"$data\"" --set model.width=64 --set "run.epochs=${TRAIN_EPOCHS:-15}" \
        --set "data.workers=$workers" --out "$dir" --overwrite >>"$OUT/train.log" 2>&1
      rc=$?
      say "- $rule: exit $rc, $(( $(date +%s) - start )) s in all (kernel compilation and autotuning included)"
      [[ -f "$dir/metrics.csv" ]] && cp "$dir/metrics.csv" "$OUT/train-$rule-metrics.csv" && runs+=("$dir")
    done
    say
    [[ ${#runs[@]} -gt 0 ]] && "$bf" compare "${runs[@]}" 2>>"$OUT/train.log" | tee -a "$report"
  fi
fi
