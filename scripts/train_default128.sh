#!/usr/bin/env bash
# Train the bundled 128 px model (configs/train/*.yaml) on one GPU, in two phases that each fit a
# 10-minute slot; stages without dependencies between them share the GPU.
#   bash scripts/train_default128.sh a     # teacher embeddings, vqgan, backbone, identity -> irn
#   bash scripts/train_default128.sh b     # score, mask (need phase a's exports in runs/)
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
  train vqgan 7.3 3 max_steps=4000 loss.gan_start_step=2000 &
  train backbone 6.5 4 max_steps=4000 &
  ${PYTHON:-python3} -m diffrestore.training.teacher --faces data/utkface/train --out data/utkface/train_sface128.npy \
    --workers 8 > $RUNS/teacher.log 2>&1
  train identity 2.8 4 max_steps=3000
  train irn 2.5 4 max_steps=2000 pretrained.identity=$RUNS/identity/export/identity
  wait
  ;;
b)
  train score 7.5 8 max_steps=6000 pretrained.vqgan=$RUNS/vqgan/export/vqgan &
  train mask 4 4 max_steps=800 pretrained.vqgan=$RUNS/vqgan/export/vqgan \
    pretrained.backbone=$RUNS/backbone/export/backbone pretrained.identity=$RUNS/identity/export/identity \
    pretrained.irn=$RUNS/irn/export/irn
  wait
  ;;
esac
