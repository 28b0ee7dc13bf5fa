#!/usr/bin/env bash
# Train the bundled 128 px model (configs/train/*.yaml) on one GPU, in two phases that each fit a
# 10-minute slot; stages without dependencies between them share the GPU.
#   bash scripts/train_default128.sh a     # vqgan, backbone
#   bash scripts/train_default128.sh b     # score; teacher embeddings -> identity -> irn -> mask
# Each stage stops at its time limit (checkpoint + export); RUNS overrides the output root.
set -euo pipefail
RUNS=${RUNS:-runs}
COMMON="log_with=tensorboard optim.lr_schedule=constant_with_warmup"
train() {  # stage minutes workers [overrides...]
  local stage=$1 minutes=$2 workers=$3; shift 3
  ${PYTHON:-python3} train.py --config configs/train/$stage.yaml output_dir=$RUNS/$stage time_limit_minutes=$minutes \
    data.num_workers=$workers $COMMON "$@" > $RUNS/$stage.log 2>&1
}
mkdir -p $RUNS
case $1 in
a)
  train vqgan 7.5 6 max_steps=4000 loss.gan_start_step=2000 &
  train backbone 7 8 max_steps=4000
  wait
  ;;
b)
  train score 7.8 7 max_steps=6000 pretrained.vqgan=$RUNS/vqgan/export/vqgan &
  ${PYTHON:-python3} -m diffrestore.training.teacher --faces data/utkface/train \
    --out data/utkface/train_sface128.npy --workers 8 > $RUNS/teacher.log 2>&1
  train identity 2.3 5 max_steps=2500
  train irn 1.8 5 max_steps=1500 pretrained.identity=$RUNS/identity/export/identity
  train mask 2 5 max_steps=600 pretrained.vqgan=$RUNS/vqgan/export/vqgan \
    pretrained.backbone=$RUNS/backbone/export/backbone pretrained.identity=$RUNS/identity/export/identity \
    pretrained.irn=$RUNS/irn/export/irn
  wait
  ;;
esac
