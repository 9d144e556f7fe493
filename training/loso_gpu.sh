#!/usr/bin/env bash
# The leave-sources-out comparison of issue 12 in one call of a lent GPU machine (H100, 16 cores).
#
#   python -m training.data --data ../shared/data/cxr-multisource --out runs/ms/manifest.csv
#   python -m training.shrink --data ../shared/data/cxr-multisource --out gpu/ms320 --max-side 320 --quality 90
#   cp runs/ms/manifest.csv gpu/ms320/ingest.csv
#   OUT=runs/loso-gpu training/loso_gpu.sh          # on the GPU machine: OUT is where results go
#
# The images are re-encoded at <= 320 px only to fit the machine's 64 MiB transfer limit; the
# manifest (groups, duplicates) comes from the originals. Every run of every row goes in parallel
# under CUDA MPS where it starts (kernels of different processes then overlap), else time-sliced.
set -uo pipefail
OUT=${OUT:?set OUT}
RUNS=${RUNS:-/tmp/loso}
DEADLINE=${DEADLINE:-390}
EPOCHS=${EPOCHS:-50}
JOBS=${JOBS:-32}
DATA=${DATA:-gpu/ms320}
EXTRA=${EXTRA:-}
mkdir -p "$OUT" "$RUNS"
LOG="$RUNS/device"
mkdir -p "$LOG"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOG/device.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$LOG/device.txt"

if nvidia-cuda-mps-control -d 2>/dev/null && timeout 60 python3 -c "import torch; torch.ones(1, device='cuda').sum().item()"; then
  echo "MPS: on" | tee -a "$LOG/device.txt"
else
  echo quit | nvidia-cuda-mps-control 2>/dev/null
  echo "MPS: off" | tee -a "$LOG/device.txt"
fi

( while sleep 20; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done ) >"$LOG/gpu_usage.txt" 2>&1 &
MONITOR=$!

# All 31 runs at once (JOBS), big models first; ResNet-50 and InceptionV3 on the two holdouts that
# together hold every source out once (their memory would not fit all four next to the rest). Only
# ResNet-18 rows get a final model: a ResNet-50 or InceptionV3 checkpoint (47 MB of fp16 weights and
# 17 MB of fp32 gate statistics) fits neither the 64 MB that may come back nor the repository.
# ROWS and FINAL choose other rows, e.g. the lung-centred comparison of issue 23:
#   ROWS="resnet18:crop-equalize resnet18:lung-crop resnet18:lung-mask" FINAL="$ROWS" OUT=... training/loso_gpu.sh
ROWS=${ROWS:-"resnet50:source-balanced@hannover+nih,cohen+kermany inception_v3:source-balanced@hannover+nih,cohen+kermany resnet18:baseline resnet18:crop-equalize resnet18:strong-aug resnet18:source-balanced resnet18:source-adversary"}
FINAL=${FINAL:-"resnet18:baseline resnet18:crop-equalize resnet18:strong-aug resnet18:source-balanced resnet18:source-adversary"}
# shellcheck disable=SC2086  # ROWS, FINAL and EXTRA are lists of words
python3 -m training.loso --data "$DATA" --manifest "$DATA/ingest.csv" --out "$RUNS" --jobs "$JOBS" \
  --deadline "$DEADLINE" --rows $ROWS --final $FINAL \
  --task multiclass --epochs "$EPOCHS" --patience 15 $EXTRA 2>&1 | tee "$LOG/loso.txt"
kill $MONITOR 2>/dev/null

cp "$RUNS/loso.md" "$OUT/" 2>/dev/null
# Every run's summary, predictions and log, no weights: one small file.
tar czf "$OUT/runs.tar.gz" -C "$RUNS" --exclude='*.pt' --exclude='*.safetensors' --exclude='*.tmp' . 2>/dev/null
# The weights of the two final models with the best mean held-out AUC, in 15 MB pieces (the
# transfer's file limit).
python3 - "$RUNS" "$OUT" <<'PY'
import json, pathlib, sys
from training.loso import mean_common_auc
runs, out = map(pathlib.Path, sys.argv[1:])
report = json.loads((runs / "loso.json").read_text())
def mean_auc(name):
    mean = mean_common_auc(report, name)
    return -1.0 if mean is None else mean
finals = sorted(report["finals"], key=mean_auc, reverse=True)
files, room = 2, 60_000_000 - (out / "runs.tar.gz").stat().st_size
with (out / "loso.md").open("a") as md:
    md.write("\nfinals by mean held-out AUC: " + ", ".join(f"{n} {mean_auc(n):.3f}" for n in finals) + "\n")
for name in finals[:2]:
    arch, recipe = name.split(":")
    data = (runs / f"{arch}-{recipe}" / "all" / "model" / "model.safetensors").read_bytes()
    pieces = [data[i:i + 15_000_000] for i in range(0, len(data), 15_000_000)]
    if files + len(pieces) > 8 or len(data) > room:
        continue
    for k, piece in enumerate(pieces):
        (out / f"{arch}-{recipe}.part{k}").write_bytes(piece)
    files, room = files + len(pieces), room - len(data)
    print("returned", name, len(pieces), "pieces")
PY
ls -la "$OUT"
