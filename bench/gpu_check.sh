#!/usr/bin/env bash
# Issue 13's GPU measurements in one call of a lent GPU machine (about 8 minutes on an H100).
#
#   OUT=runs/gpu bench/gpu_check.sh                 # on the GPU machine, from the repository root
#   DEVICE=cpu ARCHS=resnet18 SECONDS_PER_ROW=0.2 EPOCHS=1 LIMIT=96 TRAIN_SECONDS=30 PY=.venv/bin/python \
#     OUT=/tmp/gpu bench/gpu_check.sh                 # a dry run on the CPU
#
# 1. the fp16 and CUDA-graph tests (tests/unit/model/test_half.py; the graph test runs only on a GPU);
# 2. bench/inference.py on random weights: eager fp32 vs TorchScript fp32 and fp16, each with a CUDA
#    graph at batch 1, ResNet-50 and InceptionV3, batch 1 and 8;
# 3. a ResNet-50 trained on gpu/ms320 (the 320 px copy of cxr-multisource with its ingest.csv, made as
#    training/loso_gpu.sh says; the device call carries it: carry ["gpu"]),
#    whose training run ends with fp16's guard on its test fold (model.builder.half, in metadata.json);
# 4. bench/inference.py on that model: the path its guard chose against eager fp32.
# Every result lands under $OUT; each step has its own time limit so that one stuck step leaves
# the others' results.
set -uo pipefail
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
SECONDS_PER_ROW=${SECONDS_PER_ROW:-2}
EPOCHS=${EPOCHS:-12}
LIMIT=${LIMIT:-0}
TRAIN_SECONDS=${TRAIN_SECONDS:-240}
DATA=${DATA:-gpu/ms320}
ARCHS=${ARCHS:-resnet50,inception_v3}
WORK=${WORK:-/tmp/gpu_check}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 SAM_CLI_TELEMETRY=0
PY=${PY:-python3}

{
  if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; fi
  $PY -c "import torch, onnxruntime; print('torch', torch.__version__, 'onnxruntime', onnxruntime.__version__)"
} >"$OUT/device.txt" 2>&1

timeout 180 $PY -m pytest -q -p no:cacheprovider tests/unit/model/test_half.py tests/unit/model/test_agreement.py \
  >"$OUT/tests.txt" 2>&1
echo "tests: exit $?" >>"$OUT/device.txt"

timeout 240 $PY bench/inference.py --device "$DEVICE" --archs "$ARCHS" --seconds "$SECONDS_PER_ROW" \
  --json "$OUT/bench-random.json" >"$OUT/bench-random.txt" 2>&1
echo "bench (random weights): exit $?" >>"$OUT/device.txt"

if [ -f "$DATA/ingest.csv" ]; then
  timeout $((TRAIN_SECONDS + 120)) $PY -m training.train --data "$DATA" --manifest "$DATA/ingest.csv" \
    --arch resnet50 --preset xray-gray-224-v2 --epochs "$EPOCHS" --limit "$LIMIT" --device "$DEVICE" \
    --time-limit "$TRAIN_SECONDS" --output-dir "$WORK/model" --output-data-dir "$WORK/output" \
    --checkpoint-dir "$WORK/ckpt" --no-resume >"$OUT/train.txt" 2>&1
  echo "train: exit $?" >>"$OUT/device.txt"
  cp "$WORK/model/metadata.json" "$OUT/trained-metadata.json" 2>/dev/null
  timeout 180 $PY bench/inference.py --device "$DEVICE" --seconds "$SECONDS_PER_ROW" --model "$WORK/model" \
    --json "$OUT/bench-trained.json" >"$OUT/bench-trained.txt" 2>&1
  echo "bench (trained): exit $?" >>"$OUT/device.txt"
else
  echo "no $DATA/ingest.csv: no trained model" >>"$OUT/device.txt"
fi
cat "$OUT/device.txt"
