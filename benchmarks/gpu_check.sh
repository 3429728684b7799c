#!/usr/bin/env bash
# Is layerdrop ready on this GPU machine? A few minutes of real work on the GPU path, one line per part:
#
#   PASS|FAIL|SKIP <part>: <what was measured>
#
#   finetune-bf16   fine-tune all-MiniLM-L6-v2 on toy-sentiment (1,200 sentences, 3 epochs) in bf16 mixed
#                   precision: the loss must fall to under half its first value, the result and the model be written
#   finetune-fp16   the same in fp16 (gradient scaling)
#   bench           `layerdrop bench --device cuda` on all-MiniLM-L6-v2 and its top-2-dropped version (CUDA
#                   synchronised around every timed forward): the speed-up beside the ideal ratio from FLOPs;
#                   dropping 2 of 6 layers must be faster
#   perplexity      `layerdrop perplexity` of the bundled decoder SmolLM2-135M-Instruct on shakespeare:eval: a
#                   finite, plausible perplexity and tokens/s
#   generate        `layerdrop bench --generate` on that decoder and its top-6-dropped version (KV cache, batch 1
#                   and 8): tokens/s and the speed-up beside the ideal ratio
#   two-process     finetune-bf16 again as 2 processes, one per GPU (`accelerate launch --multi_gpu`): the same
#                   optimizer steps and a dev score within 0.05 of the one-GPU run (SKIP with fewer than 2 GPUs)
#
# It exits 1 if any part failed, 0 otherwise. Expected time on one A100 or H100: 2 to 4 minutes (budget: 8);
# every part is stopped after 3 minutes. Nothing is downloaded: both models ship in PyPI packages.
#
# Usage:  benchmarks/gpu_check.sh [WORK_DIR]       outputs go to WORK_DIR (default: a new temporary folder)
# Environment:
#   PYTHON             the interpreter with layerdrop installed (default: python)
#   GPU_CHECK_DEVICE   cuda (default) or cpu: cpu runs every part that needs no CUDA on the CPU, for the test
#                      suite (tests/test_gpu_check.py): small sizes, mixed precision off, 2 CPU processes (gloo)
#   GPU_CHECK_MODEL    the model to fine-tune (default: bundled:all-MiniLM-L6-v2; the test passes a tiny one)
#   GPU_CHECK_DECODER  the decoder for the perplexity part (default: bundled:SmolLM2-135M-Instruct)

set -u -o pipefail

PY=${PYTHON:-python}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
MODEL=${GPU_CHECK_MODEL:-bundled:all-MiniLM-L6-v2}
BENCH_MODEL=bundled:all-MiniLM-L6-v2
DECODER=${GPU_CHECK_DECODER:-bundled:SmolLM2-135M-Instruct}
WORK=${1:-$(mktemp -d -t layerdrop-gpu-check.XXXXXX)}
LIMIT=180
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ "$DEVICE" = cuda ]; then
  TRAIN=(--task toy-sentiment --epochs 3 --lr 1e-4 --batch-size 32)
  BENCH=(--device cuda --batch-sizes 32 --seq-lens 128 --repeats 50 --warmup 10)
  PRECISIONS=(bf16 fp16)
  LAUNCH_ENV=()
  PERPLEXITY=(--max-tokens 16384)
  GENERATE=(--batch-sizes 1,8 --prompt-tokens 128 --new-tokens 128 --repeats 5 --warmup 2)
else
  # A tiny model memorising 32 sentences (full batches): the loss falls within seconds.
  TRAIN=(--task toy-sentiment --max-train-samples 32 --max-eval-samples 32 --epochs 20 --batch-size 32 --max-length 32 --lr 1e-2)
  BENCH=(--device cpu --batch-sizes 1 --seq-lens 16 --repeats 10 --warmup 2 --threads 1 --no-memory)
  PRECISIONS=(no no)  # mixed precision is a CUDA feature; the parts still run, in float32
  LAUNCH_ENV=(ACCELERATE_USE_CPU=1)
  PERPLEXITY=(--max-tokens 256 --context 128 --stride 64)
  GENERATE=(--batch-sizes 1 --prompt-tokens 8 --new-tokens 4 --repeats 1 --warmup 0 --threads 1)
fi

failed=0
report() {  # report STATUS PART MESSAGE
  echo "$1 $2: $3"
  if [ "$1" = FAIL ]; then failed=1; fi
}

# run PART COMMAND...: the command's output goes to WORK/PART.log; on failure, its last line is the message.
run() {
  local part=$1 code=0; shift
  timeout "$LIMIT" "$@" >"$WORK/$part.log" 2>&1 || code=$?
  if [ "$code" = 124 ]; then
    report FAIL "$part" "stopped after $LIMIT s (log: $WORK/$part.log)"
  elif [ "$code" != 0 ]; then
    report FAIL "$part" "$(grep -v '^\s*$' "$WORK/$part.log" | tail -n 1) (log: $WORK/$part.log)"
  fi
  return "$code"
}

# check PART PYTHON_CODE [ARG...]: the code gets WORK and ARGs, reads the part's files and prints its figures,
# or exits with the reason it failed.
check() {
  local part=$1 code=$2 message; shift 2
  if message=$("$PY" -c "$code" "$WORK" "$@" 2>&1); then report PASS "$part" "$message"; else report FAIL "$part" "$message"; fi
}

if [ "$DEVICE" = cuda ]; then
  if ! gpus=$("$PY" -c 'import torch; print(*(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())), sep=", ")') \
      || [ -z "$gpus" ]; then
    report FAIL cuda "torch sees no CUDA device"
    exit 1
  fi
  echo "layerdrop GPU check on $gpus; work dir $WORK"
else
  echo "layerdrop GPU check on the CPU (GPU_CHECK_DEVICE=cpu); work dir $WORK"
fi

FINETUNE_CHECK='
import json, sys
from pathlib import Path
work, name = Path(sys.argv[1]), sys.argv[2]
result = json.loads((work / f"{name}.json").read_text())
first, final, steps = result["train_loss"]["first"], result["train_loss"]["final"], result["train_steps"]
score, speed = result["score"], result["train_examples_per_s"]
if not (work / name / "config.json").is_file():
    sys.exit(f"no model written to {work / name}")
if not final < first / 2:
    sys.exit(f"the loss did not fall to half: {first:.4f} -> {final:.4f} in {steps} steps")
print(f"loss {first:.4f} -> {final:.4f} in {steps} steps, dev accuracy {score:.4f}, {speed:.0f} examples/s, result and model written")
'
for index in 0 1; do
  name=finetune-$([ "$index" = 0 ] && echo bf16 || echo fp16)
  if [ "$DEVICE" = cuda ] && [ "$index" = 0 ] && ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_bf16_supported())'; then
    report SKIP "$name" "this GPU has no bf16"
    continue
  fi
  run "$name" "$PY" -m layerdrop finetune "$MODEL" "${TRAIN[@]}" --mixed-precision "${PRECISIONS[$index]}" \
      --output "$WORK/$name" --result "$WORK/$name.json" --overwrite \
    && check "$name" "$FINETUNE_CHECK" "$name"
done

if run bench-drop "$PY" -m layerdrop drop "$BENCH_MODEL" --strategy top --num-drop 2 --output "$WORK/top2" --overwrite \
  && run bench "$PY" -m layerdrop bench "$BENCH_MODEL" "$WORK/top2" "${BENCH[@]}" --json "$WORK/bench.json" --overwrite; then
  check bench '
import json, sys
from pathlib import Path
report = json.loads((Path(sys.argv[1]) / "bench.json").read_text())
full, top2 = (model["cells"][0] for model in report["models"])
device, batch, length = report["device_name"], full["batch_size"], full["seq_len"]
before, after = full["median_ms"], top2["median_ms"]
speedup, ideal, share = top2["speedup"], top2["ideal_speedup"], top2["speedup_vs_ideal"]
line = f"{device}, batch {batch} x {length}: {before:.2f} -> {after:.2f} ms, speed-up {speedup:.3f} (ideal {ideal:.3f}: {share:.3f} of it)"
if speedup <= 1:
    sys.exit(f"no faster with 2 of 6 layers dropped: {line}")
print(line)
'
fi

if ! "$PY" -m layerdrop perplexity --help >/dev/null 2>&1; then
  report SKIP perplexity "this layerdrop has no perplexity command yet"
  report SKIP generate "this layerdrop has no perplexity command yet"
else
  if run perplexity "$PY" -m layerdrop perplexity "$DECODER" --corpus shakespeare:eval "${PERPLEXITY[@]}" \
      --device "$DEVICE" --result "$WORK/perplexity.json"; then
    check perplexity '
import json, math, sys
from pathlib import Path
result = json.loads((Path(sys.argv[1]) / "perplexity.json").read_text())
ppl, tokens, speed = result["perplexity"], result["tokens_scored"], result["tokens_per_second"]
if not (math.isfinite(ppl) and 1 < ppl < 1000):
    sys.exit(f"implausible perplexity {ppl} on {tokens} tokens")
print(f"perplexity {ppl:.2f} on {tokens} tokens of shakespeare:eval, {speed:.0f} tokens/s")
'
  fi
  if run generate-drop "$PY" -m layerdrop drop "$DECODER" -k 6 --strategy top -o "$WORK/decoder-top6" --overwrite \
      && run generate "$PY" -m layerdrop bench "$DECODER" "$WORK/decoder-top6" --generate "${GENERATE[@]}" \
      --device "$DEVICE" --json "$WORK/generate.json" --overwrite; then
    check generate '
import json, sys
from pathlib import Path
full, small = json.loads((Path(sys.argv[1]) / "generate.json").read_text())["models"]
cell, base = small["cells"][0], full["cells"][0]
batch, before, after = cell["batch_size"], base["tokens_per_second"], cell["tokens_per_second"]
speedup, ideal = cell["speedup"], cell["ideal_speedup"]
if sys.argv[2] == "cuda" and not speedup > 1:  # on the CPU the test times a few tokens: too noisy to judge
    sys.exit(f"no faster with 6 of 30 layers dropped: {before:.0f} -> {after:.0f} tokens/s")
print(f"batch {batch}: {before:.0f} -> {after:.0f} tokens/s with 6 of 30 layers dropped, speed-up {speedup:.3f} (ideal {ideal:.3f})")
' "$DEVICE"
  fi
fi

if [ "$DEVICE" = cuda ] && [ "$(grep -o , <<<"$gpus" | wc -l)" = 0 ]; then
  report SKIP two-process "1 GPU"
elif [ ! -f "$WORK/finetune-bf16.json" ]; then
  report SKIP two-process "no one-GPU bf16 run to compare with"
else
  port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  run two-process env "${LAUNCH_ENV[@]}" "$PY" -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 \
      --mixed_precision "${PRECISIONS[0]}" --dynamo_backend no --main_process_port "$port" \
      -m layerdrop finetune "$MODEL" "${TRAIN[@]}" --mixed-precision "${PRECISIONS[0]}" \
      --output "$WORK/two-process" --result "$WORK/two-process.json" --overwrite \
  && check two-process '
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
one, two = (json.loads((work / f"{name}.json").read_text()) for name in ("finetune-bf16", "two-process"))
steps, steps_one, score, score_one = two["train_steps"], one["train_steps"], two["score"], one["score"]
speed, speed_one = two["train_examples_per_s"], one["train_examples_per_s"]
line = (f"{steps} steps (one GPU: {steps_one}), dev accuracy {score:.4f} (one GPU: {score_one:.4f}), "
        f"{speed:.0f} examples/s (one GPU: {speed_one:.0f})")
if steps != steps_one or abs(score - score_one) > 0.05:
    sys.exit(f"differs from the one-GPU run: {line}")
print(line)
'
fi

exit "$failed"
