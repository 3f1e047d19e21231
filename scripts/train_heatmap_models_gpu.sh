#!/usr/bin/env bash
# Train the heatmap-channel recognizers of issue 6 on one GPU box, all at once:
# 3 backbones x (Base, Heatmap), distilled from dlib-resnet-torch (+ a small ArcFace term), and
# ShuffleNetV2 Base/Heatmap from scratch (ArcFace only). One process per model share the GPU.
#
#   scripts/train_heatmap_models_gpu.sh CHIPS.npz TEACHER_STATE_DICT.pt OUTDIR [MINUTES]
#
# CHIPS: python -m fasfinder.training.heatmap chips --chips CHIPS.npz   (on the dev machine; needs dlib)
# TEACHER: the converted dlib-port state dict (the user cache's dlib-resnet-torch-<sha>.pt)
# OUTDIR receives one tar per backbone group (final.pt + state.json per model) and one log.
# Then, on the dev machine: untar into RUNS and
#   python -m fasfinder.training.heatmap export-online --runs RUNS --backbone B --variant V [--distill 0]
set -euo pipefail
chips=$1 teacher=$2 out=$3 minutes=${4:-6}
runs=${RUNS:-/tmp/heatmap-runs}
heat=$runs/heat-cache.npz
mkdir -p "$runs" "$out"
export PYTHONUNBUFFERED=1
common=(--chips "$chips" --teacher-weights "$teacher" --device cuda --heat-cache "$heat" --runs "$runs")
t0=$(date +%s)
python3 -m fasfinder.training.heatmap online "${common[@]}" --epochs 0 --threads 8
echo "heatmaps + teacher embeddings: $(( $(date +%s) - t0 )) s"
pids=()
# "backbone variant distill-weight arcface-weight"; SPECS (;-separated) overrides the list
specs=${SPECS:-"shufflenet heatmap 10 0.1;shufflenet base 10 0.1;mobilenet heatmap 10 0.1;mobilenet base 10 0.1;efficientnet heatmap 10 0.1;efficientnet base 10 0.1;shufflenet heatmap 0 1;shufflenet base 0 1"}
IFS=';' read -ra spec_list <<<"$specs"
for spec in "${spec_list[@]}"; do
  read -r b v d a <<<"$spec"
  python3 -m fasfinder.training.heatmap online "${common[@]}" --backbone "$b" --variant "$v" --distill "$d" \
    --arc-weight "$a" --epochs 400 --minutes "$minutes" --threads 2 >"$runs/log-$b-$v-$d.txt" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "training: $(( $(date +%s) - t0 )) s, status $status"
cd "$runs"
tar cf "$out/shufflenet.tar" shufflenet-*/final.pt shufflenet-*/state.json 2>/dev/null || true
tar cf "$out/mobilenet.tar" mobilenet-*/final.pt mobilenet-*/state.json 2>/dev/null || true
tar cf "$out/efficientnet-base.tar" efficientnet-base/final.pt efficientnet-base/state.json 2>/dev/null || true
tar cf "$out/efficientnet-heatmap.tar" efficientnet-heatmap/final.pt efficientnet-heatmap/state.json 2>/dev/null || true
tail -n +1 log-*.txt >"$out/train-log.txt"
ls -la "$out"
exit $status
