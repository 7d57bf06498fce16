#!/usr/bin/env bash
# The quality measurements that need more training than two CPU cores give in a session, in one script sized for
# a short GPU lease (one H200 with 16 CPU cores; the same commands run on a CPU, for hours). STEPS picks the steps
# (default: all of them, more than one 10-minute call holds; a lease of ~8 minutes fits about four):
#   step2     step 2 (issue 16): the variants in VARIANTS (default the four SAMPLER:LOSS pairs), 16 epochs, run
#             seeds 0, 1, 2, each scored on the same held-out synthetic set; then the three seeds' balanced + focal
#             runs as one ensemble;
#   tiles     step 2's default on 256-wide tiles of 256x1600 images, the same seeds; with step2, each seed's
#             default and tiled runs combined (`steelinspect ensemble`: thresholds tuned on their shared
#             validation split) and scored on the held-out set;
#   segment   the segmenter: natural vs balanced sampling, bce_dice vs lovasz, 12 epochs, run seeds 0 and 1;
#   gated     the whole pipeline's Kaggle Dice on the held-out set: a natural + bce_dice segmenter (12 epochs, run
#             seed 0) tuned with tune-gate and gated by a step 1 run and by step 2 at the old default (natural +
#             bce), the new one (balanced + focal) and, with tiles, the seed-0 ensemble of the two resolutions;
#   transfer  (issue 13) at the issue's budget: 2,000 synthetic images, classifiers 6 epochs at 128x416 (step 1
#             with --frame-norm 0.5), segmenter 3 epochs at 128x800, scored on the real sample
#             (../shared/severstal-sample); one run per seed in TRANSFER_SEEDS (default "0"; the seed picks data
#             and runs);
#   transfer-seg  the segmenter alone (`--segment-only`), scored on the real masks (both transfer steps train on
#             TRANSFER_IMAGES synthetic images, default 2,000): TRANSFER_SEG lists
#             EPOCHS:SAMPLER[:SEED] runs (default "12:natural 12:balanced", seed 0; the seed picks data and run);
#   fewshot-seg  (issue 13) the k-fold few-real-images table's segmenter arm (bench/fewshot.py --tasks segment,
#             5 folds, 8 epochs), pretrained on the first transfer-seg run once it has finished.
# Processes run side by side (the models are small; data loading is what takes the time), each under LIMIT
# seconds (the transfer runs under TRANSFER_LIMIT: nothing waits for them until the end). Every number is
# measured on synthetic data except transfer's scores, which are on real images. Logs
# and JSON go to OUT_DIR (pack them where a lease returns only a few files: `tar czf "$OUT/q.tgz" -C OUT_DIR .`).
#
#     bash bench/device_quality.sh OUT_DIR [DEVICE]     (DEVICE: cuda by default; STEPS="step2 tiles ...",
#                                                       VARIANTS="natural:bce balanced:focal", LIMIT=seconds,
#                                                       TILE_EPOCHS=N for the tiled runs (default step 2's),
#                                                       ADAPT=1: transfer runs also scored adapted on unlabelled
#                                                       real frames (bench/transfer.py --adapt),
#                                                       PYTHON=... for the interpreter, REAL=... for the real
#                                                       set, RUNS=... for the trained runs, QUICK=1 for a small
#                                                       smoke run of every step)
set -u
out=${1:-/tmp/steelinspect-device-quality}
device=${2:-cuda}
real=${REAL:-../shared/severstal-sample}
steps=" ${STEPS:-step2 tiles segment gated transfer transfer-seg} "
variants=${VARIANTS:-natural:bce natural:focal balanced:bce balanced:focal}
if [ "${QUICK:-0}" = 1 ]; then
  n=120 e2=1 es=1 nt=120 et=1 ets=1 limit=${LIMIT:-1800} seeds2="0" seeds_seg="0" seg_variants="natural:bce_dice"
  transfer_seg=${TRANSFER_SEG:-3:natural} fewshot_epochs=1
else
  n=1200 e2=16 es=12 nt=${TRANSFER_IMAGES:-2000} et=6 ets=3 limit=${LIMIT:-420} seeds2="0 1 2" seeds_seg="0 1"
  seg_variants="natural:bce_dice balanced:bce_dice natural:lovasz balanced:lovasz"
  transfer_seg=${TRANSFER_SEG:-12:natural 12:balanced} fewshot_epochs=8
fi
e_tiles=${TILE_EPOCHS:-$e2}
# The transfer-seg runs' data seeds: their sets are generated with the others, before anything trains.
transfer_seeds=${TRANSFER_SEEDS:-0}
adapt=$([ "${ADAPT:-0}" = 1 ] && echo --adapt)
more_sets=$(for run in $transfer_seg; do IFS=: read -r _ _ s <<< "$run"; printf '(%s, %s), ' "$nt" "${s:-0}"; done
            for s in $transfer_seeds; do printf '(%s, %s), ' "$nt" "$s"; done)
late_limit=${TRANSFER_LIMIT:-$limit}
has() { [[ "$steps" == *" $1 "* ]]; }
early=()  # the processes the ensembles and the gated pipeline wait for
mkdir -p "$out"
export PYTHONPATH="$PWD/src:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# A dozen processes share the CPU: one thread each for the parts that run there (JPEG decoding has its own workers).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
py=${PYTHON:-python3}
runs=${RUNS:-$out/runs}  # the trained runs (RUNS=... to keep them out of OUT_DIR)
t0=$SECONDS
echo "steps:$steps"

{ lscpu | grep -E "Model name|^CPU\(s\)"; nvidia-smi -L 2>/dev/null
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } | tee "$out/machine.txt"

# The synthetic sets, generated once here (all cores) so the parallel runs below never race on bench's cache.
sets=$("$py" -c "
from common import synthetic
print(*(synthetic(images, seed) for images, seed in (($n, 0), ($n, 1), ($nt, 0), $more_sets)))" 2> "$out/sets.log") \
  || { cat "$out/sets.log"; exit 1; }
read -r train_set holdout_set _ <<< "$sets"
echo "sets generated after $((SECONDS - t0)) s: $sets"

rare() {  # rare NAME ARGS...: one bench/rare_classes.py process, its log and JSON under OUT_DIR
  local name=$1
  shift
  timeout "$limit" "$py" bench/rare_classes.py --device "$device" --json "$out/$name.json" "$@" > "$out/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - t0)) s"
}

step2="--images $n --holdout $n --size 128x416 --epochs $e2 --workers 3"
tiles=balanced:focal:tile256@256x1600
# Each seed's step 2 runs (whole strip and tiles) share one --out, so the ensembles below find both.
for seed in $seeds2; do
  if has step2; then rare "step2-seed$seed" $step2 --run-seed $seed --out "$runs/step2-seed$seed" --variants $variants & early+=($!); fi
  if has tiles; then rare "step2-tiles-seed$seed" ${step2/--epochs $e2/--epochs $e_tiles} --run-seed $seed --out "$runs/step2-seed$seed" --variants $tiles & early+=($!); fi
done
# One process per segmenter variant and seed: four in a row outlast a short lease.
if has segment; then
  for seed in $seeds_seg; do
    for variant in $seg_variants; do
      rare "segment-seed$seed-${variant/:/-}" --images $n --holdout $n --epochs 0 --variants --run-seed $seed \
        --out "$runs/segment-seed$seed-${variant/:/-}" --segment --seg-variants $variant --seg-images $n --seg-holdout $((n / 4)) \
        --seg-size 128x800 --seg-epochs $es --seg-batch 16 --workers 2 & early+=($!)
    done
  done
fi
if has gated; then
  # The gated pipeline's segmenter (when the segment step does not train it) and step 1, at step 2's budget.
  has segment || rare "segment-seed0-natural-bce_dice" --images $n --holdout $n --epochs 0 --variants --run-seed 0 \
    --out "$runs/segment-seed0-natural-bce_dice" --segment --seg-variants natural:bce_dice --seg-images $n --seg-holdout $((n / 4)) \
    --seg-size 128x800 --seg-epochs $es --seg-batch 16 --workers 2 & early+=($!)
  ( timeout "$limit" "$py" -m steelinspect train binary "$train_set" --out "$runs/binary" --epochs $e2 \
      --image-size 128x416 --seed 0 --device "$device" --workers 3 > "$out/binary.log" 2>&1
    echo "binary: exit $? after $((SECONDS - t0)) s" ) & early+=($!)
  # Step 2 at the old and the new default for seed 0, when the step2 step does not train them.
  has step2 || rare "step2-seed0" $step2 --run-seed 0 --out "$runs/step2-seed0" --variants natural:bce balanced:focal & early+=($!)
fi
if has transfer || has transfer-seg; then
  if [ -f "$real/train.csv" ]; then
    if has transfer; then
      for seed in $transfer_seeds; do
        name=transfer
        [ "$seed" = 0 ] || name+="-seed$seed"
        ( timeout "$late_limit" "$py" bench/transfer.py --real "$real" --images $nt --epochs $et --seg-epochs $ets \
            --frame-norm 0.5 --seed $seed $adapt --device "$device" --workers 3 --out "$runs/$name" --json "$out/$name.json" \
            > "$out/$name.log" 2>&1
          echo "$name: exit $? after $((SECONDS - t0)) s" ) &
      done
    fi
    if has transfer-seg; then
      # Class 4 on real steel (issue 13): the segmenter alone, trained on synthetic steel, scored on the real masks.
      first=1
      for run in $transfer_seg; do
        IFS=: read -r seg_epochs seg_sampler seg_seed <<< "$run"
        seg_seed=${seg_seed:-0}
        name="transfer-seg-$seg_epochs-$seg_sampler"
        [ "$seg_seed" = 0 ] || name+="-seed$seg_seed"
        fewshot=$(has fewshot-seg && [ $first = 1 ] && echo 1 || echo 0)
        first=0
        ( timeout "$late_limit" "$py" bench/transfer.py --segment-only --real "$real" --images $nt --seed $seg_seed \
            --seg-epochs $((seg_epochs * ets / 3)) --seg-sampler $seg_sampler $adapt --device "$device" --workers 2 \
            --out "$runs/$name" --json "$out/$name.json" > "$out/$name.log" 2>&1
          echo "transfer segmenter $seg_epochs epochs $seg_sampler seed $seg_seed: exit $? after $((SECONDS - t0)) s"
          if [ "$fewshot" = 1 ]; then
            # The k-fold table's segmenter arm, pretrained on this run; the JSON is rewritten after every fold.
            left=$((late_limit - (SECONDS - t0)))
            timeout $((left > 1 ? left : 1)) "$py" bench/fewshot.py --pretrained "$runs/$name" --real "$real" \
              --tasks segment --folds 5 --seg-epochs $fewshot_epochs --json "$out/fewshot-seg.json" \
              > "$out/fewshot-seg.log" 2>&1
            echo "fewshot segmenter arm on $name: exit $? after $((SECONDS - t0)) s"
          fi ) &
      done
    fi
  else
    echo "transfer: skipped, no real set at $real (REAL=...)"
  fi
fi
wait ${early[@]+"${early[@]}"}  # the transfer runs (independent of what follows) may go on beside the steps below

if has step2 && has tiles; then
  # Each seed's whole-strip default and tiled default as one ensemble, tuned on their shared validation split.
  ens_pids=()
  for seed in $seeds2; do
    limit=$((limit / 2)) rare "ensemble-seed$seed" $step2 --run-seed $seed --out "$runs/step2-seed$seed" --variants \
      --ensembles "balanced:focal+$tiles" & ens_pids+=($!)
  done
  wait "${ens_pids[@]}"
fi
if has step2 && [ "$(echo $seeds2 | wc -w)" -gt 1 ]; then
  # The seeds' balanced + focal step 2 runs averaged as one ensemble (thresholds averaged), on the held-out set.
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
  echo "ensemble of seeds: exit $?"
fi

if has gated; then
  # The pipeline: the seed-0 segmenter re-tuned with each step 2 gating it, then predicted and scored on the whole
  # held-out set (clean images included, as Kaggle scores). tune-gate writes into the segment run, so each gets
  # a copy.
  segment=$runs/segment-seed0-natural-bce_dice/segment-natural-bce_dice
  gates="natural-bce:$runs/step2-seed0/multiclass-natural-bce balanced-focal:$runs/step2-seed0/multiclass-balanced-focal"
  ens=$(ls -d "$runs"/step2-seed0/ensemble-* 2>/dev/null | head -n 1)
  [ -n "$ens" ] && gates="$gates two-resolutions:$ens"
  gate_pids=()
  for gate in $gates; do
    name=${gate%%:*} multiclass=${gate#*:} gated=$runs/gated-${gate%%:*}
    rm -rf "$gated" && cp -r "$segment" "$gated"
    ( timeout 200 bash -c "
      set -e
      $py -m steelinspect tune-gate $gated --binary $runs/binary --multiclass $multiclass --data $train_set \
        --device $device
      $py -m steelinspect predict $holdout_set/train_images --binary $runs/binary --multiclass $multiclass \
        --segment $gated --out $runs/pred-$name.csv --submission $runs/submission-$name.csv --device $device \
        --engine torch
      $py -m steelinspect score $runs/submission-$name.csv --truth $holdout_set --all-images
    " > "$out/gated-$name.log" 2>&1
      echo "gated by step 2 $name: exit $? after $((SECONDS - t0)) s" ) & gate_pids+=($!)
  done
  wait "${gate_pids[@]}"
fi
wait

for log in "$out"/step2-seed*.log "$out"/step2-tiles-seed*.log "$out"/ensemble-seed*.log "$out"/segment-seed*.log; do
  [ -f "$log" ] || continue
  echo "== $log"
  sed -n '/^step 2 F1\|^segmenter Dice/,$p' "$log" | grep -v "^total"
done
tail -n 24 "$out"/transfer.log "$out"/transfer-seed*.log "$out"/transfer-seg-*.log "$out/fewshot-seg.log" "$out/ensemble.log" 2>/dev/null
for log in "$out"/gated-*.log; do
  [ -f "$log" ] || continue
  echo "== $log"; grep -i -E "mean|all-empty|dice|class" "$log" | tail -n 12
done
echo "total $((SECONDS - t0)) s"
