#!/usr/bin/env bash
# Train the bundled 128 px model (configs/train/*.yaml) on one GPU, in phases that each fit a
# 10-minute slot; stages without dependencies between them share the GPU.
#   bash research/train_default128.sh a     # vqgan, backbone
#   bash research/train_default128.sh b     # score (needs a's vqgan)
#   bash research/train_default128.sh c     # identity
#   bash research/train_default128.sh d     # irn -> mask (needs c's identity, a's vqgan and backbone)
# Phase c distils phi on all of data/utkface/train from SFace embeddings computed beforehand on a
# CPU machine (OpenCV 5 on the GPU machine cannot run SFace):
#   python -m diffrestore.training.teacher --faces data/utkface/train \
#     --out data/utkface/train_sface128.npy --workers 2
# Each stage stops at its time limit (checkpoint + export); RUNS overrides the output root and
# VQGAN / BACKBONE the frozen components phase d uses (default: phase a's exports), HQ the faces of
# the irn and mask stages (default data/utkface/train).
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
  train score 7.8 14 max_steps=6000 pretrained.vqgan=$RUNS/vqgan/export/vqgan
  ;;
c)
  train identity 7.8 14 max_steps=6000 optim.lr_schedule=cosine data.hq_dir=${HQ:-data/utkface/train} \
    data.teacher_embeddings=data/utkface/train_sface128.npy
  ;;
d)
  VQGAN=${VQGAN:-$RUNS/vqgan/export/vqgan} BACKBONE=${BACKBONE:-$RUNS/backbone/export/backbone}
  HQ=${HQ:-data/utkface/train}
  train irn 1.6 14 max_steps=2000 optim.lr_schedule=cosine data.hq_dir=$HQ \
    pretrained.identity=$RUNS/identity/export/identity
  train mask 1.5 14 max_steps=700 data.hq_dir=$HQ pretrained.vqgan=$VQGAN pretrained.backbone=$BACKBONE \
    pretrained.identity=$RUNS/identity/export/identity pretrained.irn=$RUNS/irn/export/irn
  ;;
esac
