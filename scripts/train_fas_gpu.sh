#!/usr/bin/env bash
# Train the wide-crop liveness CNNs of issue 7 on one GPU box, all runs at once (one process each).
#
#   scripts/train_fas_gpu.sh DATA.npz OUTDIR
#
# DATA: python -m fasfinder.training.fas_synth ... --out DATA.npz   (on the dev machine; needs dlib)
# SPECS (;-separated "name window synth keep-regions") overrides the list of configurations; every
# configuration is trained FOLDS times with one subject group held out (validation) and once on
# everything (the shipped candidate). OUTDIR gets fas-results.tgz (RUN/result.json + logs) and
# <config>-all.pt for each configuration.
set -euo pipefail
data=$1 out=$2
folds=${FOLDS:-3} epochs=${EPOCHS:-40}
runs=${RUNS:-/tmp/fas-runs}
mkdir -p "$runs" "$out"
export PYTHONUNBUFFERED=1
# "name window synth(0/1) keep-regions(- = all; region names with _ for spaces, comma-separated) frame-cut-probability
#  [sharpness-aug 0/1] [seed] [all|folds|foldsonly]" (all: only the run on everything, no held-out folds;
#  foldsonly: only the held-out folds)
specs=${SPECS:-"w27 0.675 1 - 0.5;w40 1.0 1 - 0.5;w40-nocut 1.0 1 - 0;w27-nuaa 0.675 0 - 0.5"}
IFS=';' read -ra spec_list <<<"$specs"
pids=()
t0=$(date +%s)
for spec in "${spec_list[@]}"; do
  read -r name window synth keep cut sharp seed which <<<"$spec"
  extra=()
  [ "$synth" = 0 ] && extra+=(--no-synth)
  [ "${sharp:-0}" = 1 ] && extra+=(--sharpness-aug)
  extra+=(--seed "${seed:-0}")
  first=-1
  [ "${which:-folds}" = all ] && last=-1 || last=$((folds - 1))
  [ "${which:-folds}" = foldsonly ] && first=0
  [ "$keep" != "-" ] && extra+=(--keep-regions "${keep//_/ }")  # region names: "_" for " " in SPECS
  for fold in $(seq $first $last); do
    run=$name-f$fold
    [ "$fold" = -1 ] && run=$name-all
    python3 -m fasfinder.training.fas_wide --data "$data" --out "$runs/$run" --fold "$fold" --folds "$folds" \
      --window "$window" --frame-cut "${cut:-0.5}" --epochs "$epochs" --device cuda "${extra[@]}" >"$runs/log-$run.txt" 2>&1 &
    pids+=($!)
  done
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "training: $(( $(date +%s) - t0 )) s, status $status"
cd "$runs"
# results small, weights of the runs on all data one file each (the way back takes files of <= 16 MiB)
tar czf "$out/fas-results.tgz" */result.json log-*.txt
for d in *-all; do [ -f "$d/final.pt" ] && cp "$d/final.pt" "$out/$d.pt"; done
ls -la "$out"
tail -n 3 log-*.txt
exit $status
