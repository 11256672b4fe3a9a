#!/usr/bin/env bash
# Fine-tune the bundled model on a lent GPU in ONE device call, leaving room to rerun (docs/MODEL.md, "Training on
# a GPU"). Stills are generated on every core of the device (the fixed, filled-silhouette ground truth), then the
# bundled weights are fine-tuned at a larger batch and training scale for TRAIN_MINUTES, scored on the held-out
# clips (seeds 9001/9002, as docs/MODEL.md), and the weights, the log and the scores are written to $OUT.
#
#   bash benchmarks/device_wheels.sh                                   # here: the packages the GPU image lacks
#   run(command="bash training/device_train.sh", carry=[".whl"], timeout_s=600)   # the device tool, one call
#   bash training/device_train.sh --smoke                              # the same steps on this CPU, tiny sizes
#
# The weights come back as $OUT/light-device.safetensors (~15 MB, under the tool's 16 MiB per file). Adopt them only
# if `maskstream eval` on the held-out clips beats the bundled model's table in docs/MODEL.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ -d .whl ] && ! "$PYTHON" -c 'import av, pycocotools, pydantic' 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
OUT=${OUT:-runs/device-train}
WORK=${WORK:-/tmp/maskstream-device-train}
mkdir -p "$OUT" "$WORK"

if [ "${1:-}" = "--smoke" ]; then
  sets=2 images=4 minutes=0.2 batch=2 device=cpu sizes=320 eval_frames=4 workers=0
else
  sets=$(nproc) images=${STILLS_PER_CORE:-250} minutes=${TRAIN_MINUTES:-6} batch=16 device=cuda
  sizes=352,416,480 eval_frames=240 workers=$(( $(nproc) > 8 ? 8 : $(nproc) ))
fi
ms() { "$PYTHON" -m pipeline.cli "$@"; }
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/device_train.log"; }

log "stills: $sets sets x $images on $(nproc) cores"
for i in $(seq 0 $((sets - 1))); do
  ms synth "$WORK/set-$i" --dataset --images "$images" --seed $((7000 + i)) --force >/dev/null &
done
wait
for seed in 9001 9002; do
  for mode in surveillance drone; do
    ms synth "$WORK/eval-$mode-$seed" --mode "$mode" --seed "$seed" --frames "$eval_frames" --force >/dev/null &
  done
done
wait

log "training: $minutes min, batch $batch, sizes $sizes, on $device"
ms train --data "$WORK"/set-* --arch slim_resnet_fpn_light \
  --init maskrcnn/weights/maskstream-light-synth.safetensors --out "$WORK/light-device.safetensors" \
  --device "$device" --batch-size "$batch" --size "$sizes" --workers "$workers" --time-limit "$minutes" \
  --no-resume 2>&1 | tr '\r' '\n' | grep -v 'step/s' | tee -a "$OUT/device_train.log"

cp "$WORK/light-device.safetensors" "$OUT/"  # only the weights travel back (checkpoints stay in $WORK)

log "held-out AP (new weights, then the bundled ones; same clips, same options)"
for weights in "$OUT/light-device.safetensors" maskrcnn/weights/maskstream-light-synth.safetensors; do
  for clip in "$WORK"/eval-*; do
    echo "== $(basename "$weights") $(basename "$clip")" | tee -a "$OUT/device_train.log"
    ms eval --data "$clip" --weights "$weights" --json --device "$device" 2>&1 \
      | tee -a "$OUT/device_train.log"
  done
done
log "done: $OUT/light-device.safetensors"
