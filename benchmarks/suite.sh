#!/usr/bin/env bash
# The commands behind benchmarks/RESULTS.md, by section (run from the repo root):
#   bash benchmarks/suite.sh sampling    # one GPU: the default model's architecture, per preset
#   bash benchmarks/suite.sh training    # one GPU: every stage at 128 px, every 512 px config one step
#   bash benchmarks/suite.sh scaling     # the score stage on 1 and 2 GPUs (GPUS="1 2 4" SIZES=512 for more)
#   bash benchmarks/suite.sh flops       # anywhere: FLOPs per face, share of the peak of the measured faces/s
#   bash benchmarks/suite.sh cpu         # CPU: seconds per face of the bundled model
#   bash benchmarks/suite.sh process     # CPU: the whole sample.py process on 8 aligned 512-px faces, per preset
#   bash benchmarks/suite.sh speed       # one GPU, issue 31: folder end to end beside the pipeline alone, one face, batch 256
#   bash benchmarks/suite.sh folder-cpu  # CPU: the same folder benchmark, small
#   bash benchmarks/suite.sh threads     # CPU: seconds per face per --threads, idle and beside a busy process
# RESULTS (default benchmarks/RESULTS.md) receives every table; HQ is the training faces folder.
set -uo pipefail
RESULTS=${RESULTS:-benchmarks/RESULTS.md}
HQ=${HQ:-data/utkface/train}
PY=${PYTHON:-python3}
S="$PY benchmarks/sampling.py --append --results $RESULTS"
T="$PY benchmarks/training.py --append --results $RESULTS --random-pretrained"
case $1 in
sampling)  # the default model's architecture with random weights (speed does not depend on them; its 72 MB of
           # weights cannot travel to a GPU machine beside the tree); the 128 px model's rows are session 1's
  M256="--model-config configs/model/celebahq256.yaml"
  $S $M256 --batch-sizes 1,16,64,256                                  # the default preset
  $S $M256 --batch-sizes 1,64,256 --cfg-scale 2                       # quality.yaml
  $S $M256 --batch-sizes 1,64,256 --guidance 1 --guidance-every 2     # identity guidance, every 2nd step
  $S $M256 --batch-sizes 1,64,256 --channels-last --compile reduce-overhead
  ;;
training)
  for stage in vqgan backbone score identity irn mask; do
    $T --config configs/train/$stage.yaml data.hq_dir=$HQ data.num_workers=14
  done
  for stage in vqgan backbone score identity irn mask; do
    $T --config configs/train/ffhq512/$stage.yaml data.hq_dir=$HQ data.val_dir=null data.num_workers=14 \
      --steps 5 --no-loader
  done
  ;;
scaling)  # GPUS (default "1 2") process counts; SIZES (default "128 512") score configs
  for n in ${GPUS:-1 2}; do
    multi=$([ $n -gt 1 ] && echo --multi_gpu)
    L="${ACCELERATE:-accelerate launch} --num_processes $n $multi --mixed_precision bf16 benchmarks/training.py"
    for size in ${SIZES:-128 512}; do
      if [ $size = 128 ]; then
        $L --append --results $RESULTS --random-pretrained --config configs/train/score.yaml data.hq_dir=$HQ \
          data.num_workers=7
      else
        $L --append --results $RESULTS --random-pretrained --config configs/train/ffhq512/score.yaml \
          data.hq_dir=$HQ data.val_dir=null --no-loader --steps 10
      fi
    done
  done
  ;;
flops)  # share of the H100's bf16 peak of the best measured throughputs (compiled, tables above)
  $PY benchmarks/flops.py --append --results $RESULTS --faces-per-s 420
  $PY benchmarks/flops.py --append --results $RESULTS --model-config configs/model/ffhq512.yaml --faces-per-s 13.9
  ;;
process)  # wall time of sample.py (start, model load, 8 faces of FACES, writing) per preset, in s per face
  FACES=${FACES:-../shared/data/real-lq}; tmp=$(mktemp -d)
  for f in $(ls "$FACES" | head -8); do cp "$FACES/$f" "$tmp/"; done
  for preset in ${PRESETS:-default quality}; do
    rm -rf "$tmp.out"; start=$(date +%s.%N)
    $PY sample.py --lq "$tmp" --out "$tmp.out" --device cpu --aligned --quiet --config configs/sample/$preset.yaml
    echo "| $preset | $(ls "$tmp.out" | wc -l) | $($PY -c "print(f'{($(date +%s.%N) - $start) / 8:.2f}')") |"
  done
  rm -rf "$tmp" "$tmp.out"
  ;;
cpu)  # the presets: unguided, default (guidance 0.5 on every 5th step), quality (cfg 2, guidance every 2nd), every step
  $S --device cpu --dtype fp32 --batch-sizes 1,4 --guidance 0,0.5 --guidance-every 5 --repeats 1
  $S --device cpu --dtype fp32 --batch-sizes 1,4 --guidance 0.5 --guidance-every 2 --cfg-scale 2 --repeats 1
  $S --device cpu --dtype fp32 --batch-sizes 1 --guidance 0.5 --repeats 1   # guidance on every step
  ;;
speed)  # issue 31 in one call: 324 aligned 512-px faces and 100 whole photos through the command (--prefetch 0 =
        # the sequential loop, then the threaded one) beside the same faces through the pipeline alone; one face eager
        # and under CUDA graphs (warm-up stated); the pipeline at 1 and 256 under CUDA graphs (PROFILE=DIR: operator
        # tables of one call each; of the threaded command's folders too: GPU busy share)
  # (DEVICE, MODEL, ALIGNED, WHOLES: a dry run elsewhere, e.g. DEVICE=cpu MODEL=configs/model/tiny.yaml ALIGNED=2 WHOLES=1)
  # Each folder its own run, so that one failing (session 13: no MTCNN on the machine) leaves the others' tables.
  # threads=1: the readers' and writers' torch work single-threaded (on a GPU the model needs no CPU threads, and
  # 16 pool threads x 16 intra-op threads oversubscribe the cores).
  M256="--model-config ${MODEL:-configs/model/celebahq256.yaml}"
  F="$PY benchmarks/folder.py --append --results $RESULTS $M256 --device ${DEVICE:-cuda} --batch-size ${BATCH:-64}"
  $S $M256 --device ${DEVICE:-cuda} --batch-sizes 1,256 --compile reduce-overhead ${PROFILE:+--profile $PROFILE}
  $F --aligned-count ${ALIGNED:-324} --whole-count 0 --latency-compile none,auto --process \
    ${PROFILE:+--profile $PROFILE}
  $F --aligned-count ${ALIGNED:-324} --whole-count 0 --latency-compile "" threads=1
  $F --aligned-count 0 --whole-count ${WHOLES:-100} --whole-lq ${WHOLE:-tests/assets/whole} --latency-compile "" \
    --process ${PROFILE:+--profile $PROFILE}
  # the folder under CUDA graphs (compile=auto), its compilation inside the command's time
  $F --aligned-count ${ALIGNED:-324} --whole-count 0 --latency-compile "" --prefetch default compile=auto
  ;;
folder-cpu)  # the bundled model, 8 aligned faces and 2 whole photos, one face a call (the command's CPU chunk)
  $PY benchmarks/folder.py --append --results $RESULTS --device cpu --batch-size 1 --aligned-count 8 --whole-count 2 \
    --latency-compile none --repeats 3
  ;;
threads)  # 4 faces of the bundled model per --threads, idle and beside a busy-loop process (the default's measurement)
  $PY benchmarks/threads.py --append --results $RESULTS --lq ${FACES:-../shared/data/celebahq/val} --faces 4 \
    --threads 1,2 --repeats 3
  ;;
*)
  echo "usage: $0 sampling|training|scaling|flops|cpu|process|speed|folder-cpu|threads" >&2; exit 2
  ;;
esac
