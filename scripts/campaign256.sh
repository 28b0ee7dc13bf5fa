#!/usr/bin/env bash
# The GPU campaign of the 256 px default model, one phase per device call (docs/training.md has the
# protocol: what each call carries, what comes back, what is committed). Runs on the GPU machine from
# the repo root; checkpoints stay in $RUNS (/tmp there) between back-to-back calls.
#   bash scripts/campaign256.sh a    # VQGAN (whole, last time its latent space moves) + identity, on part0
#   bash scripts/campaign256.sh b    # score, VQGAN decoder-only, backbone, IRN, on all faces
#   bash scripts/campaign256.sh c    # score and decoder resumed, mask; the score's export comes back
# The phases of the first session (VQGAN arms, c1-c4) are in git history; their outcome in docs/training.md.
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
VQ_SHARP="loss.frequency_weight=1.0"
DECODER="loss.decoder_only=true loss.gan_start_step=0 $VQ_SHARP"
MASK_INPUTS="pretrained.vqgan=$RUNS/vqdec/export/vqgan pretrained.backbone=$RUNS/backbone/export/backbone \
  pretrained.identity=$RUNS/identity/export/identity pretrained.irn=$RUNS/irn/export/irn"

train() {  # stage run minutes [overrides...]
  local stage=$1 run=$2 minutes=$3; shift 3
  python3 train.py --config configs/train/celebahq256/$stage.yaml output_dir=$RUNS/$run data.hq_dir=$DATA/train \
    data.val_dir=$DATA/val time_limit_minutes=$minutes "$@" > $RUNS/$run.log 2>&1
  echo "$run: exit $? $(grep -o 'exported to.*' $RUNS/$run.log | tail -1)"
}

pack() {  # name files...: a tar of what comes back, in 15 MB pieces
  local name=$1; shift
  tar cf - "$@" 2>/dev/null | split -b 15M - "$OUT/$name.tar.part-"
}

case $1 in
a)
  nvidia-smi -L
  train vqgan vqgan 8.0 init.vqgan=campaign/celebahq256/vqgan data.hq_dir=$DATA/train/part0 \
    loss.gan_start_step=200 $VQ_SHARP &
  train identity identity 4.5 data.hq_dir=$DATA/train/part0 data.teacher_embeddings=data/celebahq256/part0_sface256.npy &
  python3 benchmarks/resume_check.py first --runs $RUNS/resume --hq $DATA/train/part0 --stages identity,irn,mask \
    > $RUNS/resume_first.log 2>&1 &
  wait
  cat $RUNS/vqgan/export/vqgan/reconstruction.json; tail -3 $RUNS/resume_first.log
  pack a $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqgan/export $RUNS/identity/export \
    $(ls -d $RUNS/vqgan/samples/* | tail -1) $(ls -d $RUNS/identity/samples/* | tail -1)
  ;;
b)
  train score score 8.0 pretrained.vqgan=$RUNS/vqgan/export/vqgan &
  train vqgan vqdec 8.0 init.vqgan=$RUNS/vqgan/export/vqgan $DECODER &
  train backbone backbone 8.0 init.backbone=campaign/celebahq256/backbone &
  train irn irn 5.0 pretrained.identity=$RUNS/identity/export/identity &
  python3 benchmarks/resume_check.py second --runs $RUNS/resume --hq $DATA/train/part0 --stages identity,irn,mask \
    $RESULTS > $RUNS/resume_second.log 2>&1 &
  wait
  grep -E "^\|" $RUNS/resume_second.log
  pack b $RUNS/*.log $RUNS/*/log.jsonl $RUNS/backbone/export $RUNS/irn/export $RUNS/vqdec/export/vqgan/reconstruction.json \
    $(ls -d $RUNS/score/samples/* | tail -1) $(ls -d $RUNS/vqdec/samples/* | tail -1) $(ls -d $RUNS/backbone/samples/* | tail -1)
  ;;
c)
  train score score 8.0 --resume latest pretrained.vqgan=$RUNS/vqgan/export/vqgan &
  train vqgan vqdec 8.0 --resume latest init.vqgan=$RUNS/vqgan/export/vqgan $DECODER &
  train mask mask 6.0 $MASK_INPUTS &
  wait
  cat $RUNS/vqdec/export/vqgan/reconstruction.json
  pack c $RUNS/*.log $RUNS/*/log.jsonl $RUNS/score/export $RUNS/vqdec/export $RUNS/mask/export \
    $(ls -d $RUNS/score/samples/* | tail -1) $(ls -d $RUNS/vqdec/samples/* | tail -1) $(ls -d $RUNS/mask/samples/* | tail -1)
  ;;
*)
  echo "usage: $0 a|b|c" >&2; exit 2
  ;;
esac
ls -la $OUT
