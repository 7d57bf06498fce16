#!/usr/bin/env bash
# The quality measurements that need more training than two CPU cores give in a session, in one script sized for
# a short GPU lease (about 8 minutes on one H200 with 16 CPU cores; the same commands run on a CPU, for hours):
#   1. step 2 (issue 16): natural vs balanced sampling, bce vs focal, 16 epochs, run seeds 0, 1, 2, each scored on
#      the same held-out synthetic set; then the three seeds' balanced + focal runs as one ensemble;
#   2. the segmenter: natural vs balanced sampling, bce_dice vs lovasz, 12 epochs, run seeds 0 and 1;
#   3. the whole pipeline's Kaggle Dice on the held-out set, the seed-0 segmenter gated (tune-gate) by a step 1 run
#      and by step 2 at the old default (natural + bce) and at the new one (balanced + focal);
#   4. transfer (issue 13) at the issue's budget: 2,000 synthetic images, classifiers 6 epochs at 128x416,
#      segmenter 3 epochs at 128x800, scored on the real sample (../shared/severstal-sample) when it is there; then
#      the segmenter alone (`--segment-only`) with the balanced sampler at 3 epochs and with each sampler at 12;
#   5. class 2 at full resolution: step 2's default on 256-wide tiles of 256x1600 images, run seeds 0, 1, 2.
# Processes run side by side (the models are small; data loading is what takes the time). Every number here is
# measured on synthetic data except transfer's scores, which are on real images. Logs and JSON go to OUT_DIR (about
# 20 files: where a lease returns only a few, pack them, e.g. `tar czf "$OUT/quality.tgz" -C OUT_DIR .`).
#
#     bash bench/device_quality.sh OUT_DIR [DEVICE]     (DEVICE: cuda by default; PYTHON=... for the interpreter,
#                                                       REAL=... for the real set, RUNS=... for the trained runs,
#                                                       QUICK=1 for a small smoke run of every step)
set -u
out=${1:-/tmp/steelinspect-device-quality}
device=${2:-cuda}
real=${REAL:-../shared/severstal-sample}
if [ "${QUICK:-0}" = 1 ]; then
  n=120 e2=1 es=1 nt=120 et=1 ets=1 limit=1800 seeds2="0" seeds_seg="0" seg_variants="natural:bce_dice"
else
  n=1200 e2=16 es=12 nt=2000 et=6 ets=3 limit=420 seeds2="0 1 2" seeds_seg="0 1"
  seg_variants="natural:bce_dice balanced:bce_dice natural:lovasz balanced:lovasz"
fi
mkdir -p "$out"
export PYTHONPATH="$PWD/src:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# A dozen processes share the CPU: one thread each for the parts that run there (JPEG decoding has its own workers).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
py=${PYTHON:-python3}
runs=${RUNS:-$out/runs}  # the trained runs (RUNS=... to keep them out of OUT_DIR)
t0=$SECONDS

{ lscpu | grep -E "Model name|^CPU\(s\)"; nvidia-smi -L 2>/dev/null
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } | tee "$out/machine.txt"

# The synthetic sets, generated once here (all cores) so the parallel runs below never race on bench's cache.
sets=$("$py" -c "
from common import synthetic
print(*(synthetic(images, seed) for images, seed in (($n, 0), ($n, 1), ($nt, 0))))" 2> "$out/sets.log") \
  || { cat "$out/sets.log"; exit 1; }
read -r train_set holdout_set _ <<< "$sets"
echo "sets generated after $((SECONDS - t0)) s: $sets"

rare() {  # rare NAME ARGS...: one bench/rare_classes.py process, its log and JSON under OUT_DIR
  local name=$1
  shift
  timeout "$limit" "$py" bench/rare_classes.py --device "$device" --out "$runs/$name" --json "$out/$name.json" "$@" \
    > "$out/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - t0)) s"
}

step2="--images $n --holdout $n --size 128x416 --epochs $e2 --workers 3"
for seed in $seeds2; do
  rare "step2-seed$seed" $step2 --run-seed $seed --variants natural:bce natural:focal balanced:bce balanced:focal &
done
# One process per segmenter variant and seed: four in a row outlast a short lease.
for seed in $seeds_seg; do
  for variant in $seg_variants; do
    rare "segment-seed$seed-${variant/:/-}" --images $n --holdout $n --epochs 0 --variants --run-seed $seed \
      --segment --seg-variants $variant --seg-images $n --seg-holdout $((n / 4)) --seg-size 128x800 \
      --seg-epochs $es --seg-batch 16 --workers 2 &
  done
done
# Step 1 for the gated pipeline: the step 2 runs' budget and split seed.
( timeout "$limit" "$py" -m steelinspect train binary "$train_set" --out "$runs/binary" --epochs $e2 \
    --image-size 128x416 --seed 0 --device "$device" --workers 3 > "$out/binary.log" 2>&1
  echo "binary: exit $? after $((SECONDS - t0)) s" ) &
if [ -f "$real/train.csv" ]; then
  ( timeout "$limit" "$py" bench/transfer.py --real "$real" --images $nt --epochs $et --seg-epochs $ets \
      --device "$device" --workers 3 --out "$runs/transfer" --json "$out/transfer.json" > "$out/transfer.log" 2>&1
    echo "transfer: exit $? after $((SECONDS - t0)) s" ) &
  # Class 4 on real steel (issue 13): the segmenter alone at the issue's budget with the balanced sampler (on the
  # CPU at 400 images it was the only one to find real class 4), and at 12 epochs with each sampler.
  for seg in "3 balanced" "12 natural" "12 balanced"; do
    read -r seg_epochs seg_sampler <<< "$seg"
    ( timeout "$limit" "$py" bench/transfer.py --segment-only --real "$real" --images $nt --seg-epochs $((seg_epochs * ets / 3)) \
        --seg-sampler $seg_sampler --device "$device" --workers 2 --out "$runs/transfer-seg-$seg_epochs-$seg_sampler" \
        --json "$out/transfer-seg-$seg_epochs-$seg_sampler.json" > "$out/transfer-seg-$seg_epochs-$seg_sampler.log" 2>&1
      echo "transfer segmenter $seg_epochs epochs $seg_sampler: exit $? after $((SECONDS - t0)) s" ) &
  done
else
  echo "transfer: skipped, no real set at $real (REAL=...)"
fi
# Class 2 at full resolution (issue 16): step 2's default on 256-wide tiles of 256x1600 images, three run seeds.
for seed in $seeds2; do
  rare "step2-tiles-seed$seed" $step2 --run-seed $seed --variants balanced:focal:tile256@256x1600 &
done
wait

# The seeds' balanced + focal step 2 runs averaged as one ensemble, on the same held-out set.
timeout 120 "$py" -c "
import json
from common import synthetic
from steelinspect.train.api import evaluate
members = ['$runs/step2-seed%s/multiclass-balanced-focal' % s for s in '$seeds2'.split()]
held = evaluate(members, synthetic($n, 1), device='$device', workers=3)['all']
f1 = {c: held['per_class'][c]['f1'] for c in '1234'}
print('ensemble of %d seeds, balanced:focal: macro F1 %.3f' % (len(members), sum(f1.values()) / 4),
      {c: round(v, 3) for c, v in f1.items()})
json.dump({'members': members, 'per_class': f1}, open('$out/ensemble.json', 'w'), indent=1)
" > "$out/ensemble.log" 2>&1
echo "ensemble: exit $?"

# The pipeline: the seed-0 segmenter re-tuned with each step 2 gating it, then predicted and scored on the whole
# held-out set (clean images included, as Kaggle scores). tune-gate writes into the segment run, so each gets a copy.
segment=$runs/segment-seed0-natural-bce_dice/segment-natural-bce_dice
for step2_run in natural-bce balanced-focal; do
  gated=$runs/gated-$step2_run
  rm -rf "$gated" && cp -r "$segment" "$gated"
  multiclass=$runs/step2-seed0/multiclass-$step2_run
  timeout 200 bash -c "
    set -e
    $py -m steelinspect tune-gate $gated --binary $runs/binary --multiclass $multiclass --data $train_set \
      --device $device
    $py -m steelinspect predict $holdout_set/train_images --binary $runs/binary --multiclass $multiclass \
      --segment $gated --out $runs/pred-$step2_run.csv --submission $runs/submission-$step2_run.csv \
      --device $device --engine torch
    $py -m steelinspect score $runs/submission-$step2_run.csv --truth $holdout_set --all-images
  " > "$out/gated-$step2_run.log" 2>&1
  echo "gated by step 2 $step2_run: exit $?"
done

for log in "$out"/step2-seed*.log "$out"/step2-tiles-seed*.log "$out"/segment-seed*.log; do
  echo "== $log"
  sed -n '/^step 2 F1\|^segmenter Dice/,$p' "$log" | grep -v "^total"
done
tail -n 12 "$out/transfer.log" "$out"/transfer-seg-*.log "$out/ensemble.log" 2>/dev/null
for log in "$out"/gated-*.log; do echo "== $log"; grep -i -E "mean|all-empty|dice|class" "$log" | tail -n 12; done
echo "total $((SECONDS - t0)) s"
