#!/usr/bin/env bash
# The checks that need hardware this project's CI never has, in one script sized for a short GPU lease:
#   1. training speed on the CPU at fp32 vs bf16 (meaningful on a CPU with bf16 units: AVX-512 BF16 or AMX);
#   2. training speed on CUDA at fp32, bf16 and fp16 (grad scaler), channels-last, torch.compile;
#   3. the seeded fp32-vs-bf16(-vs-fp16) run: final metrics within noise;
#   4. the CLI end to end on CUDA: train step 1 and step 2 at fp16 + channels-last, predict on the GPU.
# Each step has its own time limit, so a hung one costs only its share. Logs go to OUT_DIR/<step>.log.
#
#     bash bench/device_check.sh OUT_DIR            (PYTHON=... to choose the interpreter)
set -u
out=${1:-/tmp/steelinspect-device-check}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
work=$(mktemp -d)

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit} s)"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  tail -n 40 "$out/$name.log"
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
}

{ lscpu; nvidia-smi; "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } \
  > "$out/machine.txt" 2>&1
grep -E "Model name|^CPU\(s\)" "$out/machine.txt"
grep -o -w -E "avx512_bf16|amx_bf16|amx_tile|avx512_vnni" "$out/machine.txt" | sort -u | tr '\n' ' '; echo
grep -E "torch|H100|H200" "$out/machine.txt" | head -3

step cpu-precision 130 "$py" bench/train_precision.py --device cpu --settings fp32 bf16 bf16+cl \
  --batch 16 --batches 3 --rounds 1 --no-decode
step cuda-precision 100 "$py" bench/train_precision.py --device cuda \
  --settings fp32 bf16 fp16 fp32+cl bf16+cl fp16+cl --batch 32 --batches 10 --rounds 2 --no-decode
step cuda-compile 90 "$py" bench/train_precision.py --device cuda --tasks segment binary \
  --settings bf16+cl bf16+cl+compile --batch 32 --batches 10 --rounds 1 --no-decode
step cpu-seeded 70 "$py" bench/train_precision.py --seeded --device cpu --images 256 --epochs 3
step cuda-seeded 50 "$py" bench/train_precision.py --seeded --device cuda --images 256 --epochs 3
step cuda-cli 100 bash -c "
  set -e
  $py -m steelinspect synth $work/data --images 240 --seed 1
  for task in binary multiclass; do
    $py -m steelinspect train \$task $work/data --out $work/\$task --epochs 2 --image-size 128x416 \
      --device cuda --precision fp16 --channels-last --workers 2
  done
  $py -m steelinspect train segment $work/data --out $work/segment --epochs 1 --image-size 128x800 \
    --device cuda --precision bf16 --workers 2
  $py -m steelinspect predict $work/data/train_images --binary $work/binary --multiclass $work/multiclass \
    --segment $work/segment --out $work/pred.csv --submission $work/submission.csv --device cuda
  head -3 $work/pred.csv; wc -l $work/submission.csv
  cat $work/binary/metrics.json | head -c 600
"
rm -rf "$work"
