#!/usr/bin/env bash
# The image-folder pipeline at the size users have, side by side with PyTorch, one command:
#   benches/image_folder.sh            (needs Pillow + numpy, and torch + torchvision for the peer)
# 1. generates full-size JPEG folders once (500x375 +-20%, ~110 KB each): /tmp/jpeg20k (100
#    classes x 200 = 20,000 training photos) and /tmp/jpeg5k (25 x 200 = 5,000);
# 2. loader throughput at 224 with 1 and 2 workers: this project's loader bench and
#    torchvision's ImageFolder + DataLoader (benches/peers/image_folder_loader.py), two
#    interleaved rounds;
# 3. the real job: `biofeedback train` with the ImageNet ResNet-18 config on both folders,
#    peak resident memory (/usr/bin/time) and the time from start to the first training step.
# Environment: PYTHON (default python3), STEPS (training steps of the memory runs, default 20),
# WIDTH (ResNet width of the memory runs, default the config's 64), ROUNDS (default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-20}
WIDTH=${WIDTH:-64}
ROUNDS=${ROUNDS:-2}
for spec in "jpeg20k 100" "jpeg5k 25"; do
  set -- $spec
  "$PYTHON" benches/make_jpeg_folder.py "/tmp/$1" --classes "$2" --per-class 200 \
    --val-per-class 10 --size 500x375 --seed 1 >&2
done
cargo build --release --bin biofeedback >&2

echo "## Loader throughput, images/s at 224 (training transform), /tmp/jpeg20k"
echo
for round in $(seq "$ROUNDS"); do
  echo "round $round: biofeedback (batches of 32; images/s = 256 / median time)"
  BIOFEEDBACK_BENCH_FOLDER=/tmp/jpeg20k cargo bench -q -p biofeedback-trainer --bench loader \
    -- train_224 2>/dev/null | grep -E "^\s+[├╰]"
  "$PYTHON" benches/peers/image_folder_loader.py /tmp/jpeg20k --workers 1 --batch-size 64 \
    --batches 30 --header 2>/dev/null
  "$PYTHON" benches/peers/image_folder_loader.py /tmp/jpeg20k --workers 2 --batch-size 64 \
    --batches 30 2>/dev/null
done

echo
echo "## The ImageNet ResNet-18 config (width $WIDTH), $STEPS steps: peak memory, time to first step"
echo
echo "| files | peak RSS (MB) | start to first step (s) | wall (s) |"
echo "|---|---|---|---|"
for folder in jpeg5k jpeg20k; do
  out=$(mktemp -d)
  start=$(date +%s.%N)
  /usr/bin/time -v target/release/biofeedback train \
    --config configs/imagenet-subset-resnet18-kp.toml --set "data.dir=\"/tmp/$folder\"" \
    --set run.epochs=1 --set "run.steps_per_epoch=$STEPS" --set data.eval_limit=64 \
    --set "model.width=$WIDTH" --out "$out/run" 2> "$out/err"
  end=$(date +%s.%N)
  files=$(find "/tmp/$folder/train" -type f | wc -l)
  rss=$(awk -F': ' '/Maximum resident/ {print int($2/1024)}' "$out/err")
  first=$("$PYTHON" - "$out/err" "$start" <<'PY'
import re, sys, datetime
start = float(sys.argv[2])
for line in open(sys.argv[1], errors="replace"):
    if "first training step done" in line:
        stamp = re.search(r"\d{4}-\d\d-\d\dT[\d:.]+Z", line).group(0)
        t = datetime.datetime.strptime(stamp[:26], "%Y-%m-%dT%H:%M:%S.%f")
        print(f"{t.replace(tzinfo=datetime.timezone.utc).timestamp() - start:.1f}")
        break
PY
)
  printf '| %s | %s | %s | %.0f |\n' "$files" "$rss" "$first" "$("$PYTHON" -c "print($end - $start)")"
  rm -rf "$out"
done
