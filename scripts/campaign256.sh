#!/usr/bin/env bash
# The GPU campaign of the 256 px default model, one phase per device call (docs/training.md has the
# protocol: what each call carries, what comes back, what is committed). Runs on the GPU machine from
# the repo root; checkpoints stay in $RUNS (/tmp there) between back-to-back calls.
#   bash scripts/campaign256.sh c1    # degradation benchmark, resume check (first half), VQGAN arms (loss, size, warm start)
#   bash scripts/campaign256.sh c2    # resume check (second half), best VQGAN arm on all faces + backbone
#   bash scripts/campaign256.sh c3    # stage benchmarks; VQGAN with the GAN loss + backbone, both resumed; exports back
set -uo pipefail
OUT=${OUT:-/tmp/out}; RUNS=${RUNS:-/tmp/runs}; DATA=${DATA:-/tmp/celebahq256}
mkdir -p "$OUT" "$RUNS" "$DATA/train"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
for part in data/celebahq256/train/part*; do [ -d "$DATA/train/$(basename $part)" ] || cp -r "$part" "$DATA/train/"; done
[ -d "$DATA/val" ] || cp -r data/celebahq256/val "$DATA/val"
echo "faces: $(find $DATA/train -type f | wc -l) train, $(find $DATA/val -type f | wc -l) val"
RESULTS="--append --results $OUT/RESULTS.md"
ARMS=(vq_f4 vq_f4_freq vq_f4c128_warm)
declare -A ARM_SETTINGS=(
  [vq_f4]=""
  [vq_f4_freq]="loss.frequency_weight=1.0"
  [vq_f4c128_warm]="model.vqgan.block_out_channels=[64,128,128] model.vqgan.num_vq_embeddings=1024 init.vqgan=diffrestore/pretrained/utkface128/vqgan"
)
VQ_COMMON="optim.lr_schedule=constant_with_warmup"

train() {  # stage run minutes [overrides...]
  local stage=$1 run=$2 minutes=$3; shift 3
  python3 train.py --config configs/train/celebahq256/$stage.yaml output_dir=$RUNS/$run data.hq_dir=$DATA/train \
    data.val_dir=$DATA/val time_limit_minutes=$minutes "$@" > $RUNS/$run.log 2>&1
  echo "$run: exit $? $(grep -o 'exported to.*' $RUNS/$run.log | tail -1)"
}

best_arm() {  # the best PSNR arm, unless another within 0.5 dB of it is sharper
  python3 - "$RUNS" "${ARMS[@]}" <<'PY'
import json, sys
runs, arms = sys.argv[1], sys.argv[2:]
reports = {a: json.load(open(f"{runs}/{a}/export/vqgan/reconstruction.json")) for a in arms}
best = max(reports.values(), key=lambda r: r["psnr_y"])["psnr_y"]
print(max((a for a in arms if reports[a]["psnr_y"] >= best - 0.5), key=lambda a: reports[a]["sharpness_ratio_median"]))
PY
}

pack() {  # name files...: a tar of what comes back, in 15 MB pieces
  local name=$1; shift
  tar cf - "$@" 2>/dev/null | split -b 15M - "$OUT/$name.tar.part-"
}

case $1 in
c1)
  nvidia-smi -L
  python3 benchmarks/degradations.py --hq $DATA/train --resolution 256 --workers 16 $RESULTS
  python3 benchmarks/resume_check.py first --runs $RUNS/resume --hq $DATA/train/part0 > $RUNS/resume_first.log 2>&1
  echo "resume check, first half: exit $?"
  for arm in "${ARMS[@]}"; do
    train vqgan $arm 6.0 $VQ_COMMON loss.gan_start_step=100000 ${ARM_SETTINGS[$arm]} &
  done
  wait
  for arm in "${ARMS[@]}"; do echo "$arm $(cat $RUNS/$arm/export/vqgan/reconstruction.json | tr -d '\n ')"; done
  best_arm > $RUNS/best_arm
  echo "best arm: $(cat $RUNS/best_arm)"
  pack c1 $RUNS/*.log $RUNS/*/log.jsonl $RUNS/*/export/vqgan/reconstruction.json $RUNS/*/samples
  ;;
c2)
  python3 benchmarks/degradations.py --hq $DATA/train --resolution 256 --workers 16 $RESULTS
  python3 benchmarks/resume_check.py first --runs $RUNS/resume --hq $DATA/train/part0 > $RUNS/resume_first.log 2>&1
  echo "resume check, first half: exit $?"
  arm=$(cat $RUNS/best_arm)
  train vqgan $arm 7.0 --resume latest $VQ_COMMON loss.gan_start_step=100000 ${ARM_SETTINGS[$arm]} &
  train backbone backbone 7.0 &
  wait
  cat $RUNS/$arm/export/vqgan/reconstruction.json
  pack c2 $RUNS/$arm.log $RUNS/backbone.log $RUNS/$arm/log.jsonl $RUNS/backbone/log.jsonl $RUNS/$arm/export \
    $RUNS/backbone/export $(ls -d $RUNS/$arm/samples/* | tail -1) $(ls -d $RUNS/backbone/samples/* | tail -1)
  ;;
c3)
  tail -25 $RUNS/resume_first.log | grep -v Warn
  arm=$(cat $RUNS/best_arm)
  step=$(python3 -c "import json;print([json.loads(l) for l in open('$RUNS/$arm/log.jsonl')][-1]['step'])")
  train vqgan $arm 7.5 --resume latest $VQ_COMMON loss.gan_start_step=$((step + 200)) ${ARM_SETTINGS[$arm]} &
  train backbone backbone 7.5 --resume latest &
  wait
  cat $RUNS/$arm/export/vqgan/reconstruction.json
  pack c3 $RUNS/$arm.log $RUNS/backbone.log $RUNS/$arm/log.jsonl $RUNS/backbone/log.jsonl $RUNS/$arm/export \
    $RUNS/backbone/export $(ls -d $RUNS/$arm/samples/* | tail -2) $(ls -d $RUNS/backbone/samples/* | tail -1)
  ;;
bench)  # next session: exclusive GPU
  python3 benchmarks/resume_check.py second --runs $RUNS/resume --hq $DATA/train/part0 $RESULTS > $RUNS/resume_second.log 2>&1
  echo "resume check, second half: exit $?"; grep -E "^\|" $RUNS/resume_second.log
  for stage in vqgan backbone score identity irn mask; do
    python3 benchmarks/training.py --config configs/train/celebahq256/$stage.yaml --random-pretrained \
      data.hq_dir=$DATA/train data.val_dir=null --steps 10 $RESULTS 2>&1 | grep -E "^\| (model|end)"
  done
  ;;
*)
  echo "usage: $0 c1|c2|c3" >&2; exit 2
  ;;
esac
ls -la $OUT
