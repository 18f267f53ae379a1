#!/usr/bin/env bash
# tests/gpu/check.sh OUTPUT_DIR: the suite's CUDA path run for real on a GPU machine (issue 13).
#
#   bash tests/gpu/check.sh "$OUT"          # from the repository root, on an H100/H200 with CUDA torch
#
# Steps: probe the machine -> install missing packages from carried wheels -> the CUDA tests ->
# bench run --device cuda on the paper set at batch 1,64 in fp32, fp16, bf16, fp16 + channels-last,
# and --compile on two models -> a real CUDA out-of-memory (the batch ladder must step down and say
# so) -> CUDA-event vs wall time per row -> ONNX Runtime CUDA on two models where it is available ->
# bench report. A failing step is recorded and the others still run; the exit status is 0 only when
# no step failed. Without a GPU it prints one line and exits 3.
#
# What comes back in OUTPUT_DIR (at most 6 files, none in subfolders, so all of it returns from
# the device tool, which returns at most 8 files at most 2 folders deep):
#   summary.txt      PASS/FAIL/SKIP per step, machine line, total time
#   check.log        this script's compact log (each step's full output is in the tarball's logs/)
#   env.txt          nvidia-smi, Python/torch/CUDA/cuDNN, which dependencies import
#   pytest.log       the CUDA tests
#   events.txt       CUDA-event vs wall time table
#   gpu-results.tgz  results/ (the report's input), results-extra/ (out-of-memory and diagnosis
#                    runs: not comparable measurements, kept out of the report), report/, logs/, env.json
# The run directories themselves are written under a work folder outside OUTPUT_DIR (GPU_CHECK_WORK,
# default a new /tmp/gpu-check.*): bench makes one folder per run and report writes dozens of files,
# which would exceed the 8 files that come back and could crowd out the tarball. The tarball is
# refreshed after every step, so a run stopped from outside still returns what was finished.
#
# Environment:
#   PYTHON                 interpreter (default: python3 if it imports torch, else .venv/bin/python)
#   GPU_WHEELS             folder of wheels for missing packages (default: .cache/gpu-wheels, else .whl);
#                          installed with pip --no-index --no-deps, so the preinstalled torch is never touched
#   GPU_CHECK_BUDGET_S     deadline for all steps in seconds (default 400); a step's cap is cut to what
#                          is left, a step with under 15 s left is skipped, and the report gets the
#                          reserve (45 s) on top: worst case 400 + 10 (kill grace) + 45 + 10 + ~5 s < 8 min
#   GPU_CHECK_WORK         work folder (default: mktemp -d /tmp/gpu-check.XXXXXX)
#   GPU_CHECK_REHEARSAL=cpu  dry run of the whole plumbing on a CPU machine with tiny settings
#                          (2 models, 64 px, batch 1,2, bf16 instead of fp16, no OOM/compile/ONNX-CUDA
#                          steps): NOT a GPU result, only proves flags, checks, report and tarball work
#
# Time budget on an H100/H200 (16 cores), per step: expected / hard cap (timeout, SIGINT so bench
# keeps finished rows). A bench run costs ~8 s to start (torch + CUDA init), the fp32 reference on
# the host CPU for every workload (paper set at batch 1+64: 65 x 13.9 GMAC ~ 0.9 TMAC ~ 10 s), and
# per workload ~0.3 s cuDNN autotuning + >=0.2 s warmup + >=0.3 s timing (20 workloads ~ 16 s).
#   probe + install from wheels        ~15 s   (no cap; a few pip calls)
#   pytest tests/test_engine.py -k cuda ~40 s   90 s
#   torch fp32   paper, b 1,64          ~45 s   90 s   (+ ~15 s once: fvcore GMACs, cached after)
#   torch fp16   paper, b 1,64          ~35 s   75 s
#   out-of-memory casvit_xs b512 capped ~25 s   75 s
#   torch bf16   paper, b 1,64          ~35 s   75 s
#   torch fp16 + channels-last          ~35 s   75 s
#   torch --compile 2 models, b 1       ~70 s  110 s   (2 cold inductor compiles, Triton, 16 cores)
#   torch --compile 2 models, b 64      ~70 s  110 s   (a process each: static shapes, partial results)
#   TF32-off rerun (only on fp32 parity failures) ~20 s 45 s
#   onnx cuda 2 models (only if CUDAExecutionProvider) ~40 s 60 s
#   checks + report + tarball           ~35 s   45 s reserve
#   expected total ~7 min; the deadline (below) keeps the worst case under 8 min.
set -u -o pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: bash tests/gpu/check.sh OUTPUT_DIR" >&2
    exit 2
fi
mkdir -p "$1" 2>/dev/null || { echo "error: cannot create output folder $1" >&2; exit 2; }
OUT=$(cd "$1" && pwd)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 2
REHEARSAL=${GPU_CHECK_REHEARSAL:-}

one_line_exit() {  # MESSAGE CODE: the only output of a run that cannot start
    echo "$1" >&2
    echo "$1" >"$OUT/summary.txt"
    exit "$2"
}

has_torch() { "$1" -c 'import torch' >/dev/null 2>&1; }
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif has_torch python3; then
    PY=python3
elif [ -x .venv/bin/python ] && has_torch .venv/bin/python; then
    PY=.venv/bin/python
else
    PY=python3
fi
has_torch "$PY" ||
    one_line_exit "error: $PY cannot import torch; this script needs a Python with a CUDA build of torch" 3
if [ "$REHEARSAL" != cpu ]; then
    "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1 ||
        one_line_exit "error: no CUDA GPU visible (torch.cuda.is_available() is False); this script needs a GPU machine" 3
fi

main() {
    local START=$SECONDS BUDGET=${GPU_CHECK_BUDGET_S:-400} RESERVE=45
    local WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
    local RESULTS=$WORK/results EXTRA=$WORK/results-extra LOGS=$WORK/logs
    mkdir -p "$RESULTS" "$EXTRA" "$LOGS"
    local CHECK=("$PY" tests/gpu/check_gpu_results.py)
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONHASHSEED=0
    local S_NAME=() S_RESULT=() S_NOTE=() S_SECS=()
    local RC=0 ELAPSED=0 RUN_DIR=""

    record() {  # NAME RESULT NOTE SECONDS
        S_NAME+=("$1"); S_RESULT+=("$2"); S_NOTE+=("$3"); S_SECS+=("$4")
        echo "== $2  $1 (${4}s): $3"
    }
    left() { echo $((BUDGET - (SECONDS - START))); }
    cap_for() {  # CAP -> seconds this step may run now (0: skip it, the deadline is too close)
        local room
        room=$(left)
        ((room > $1)) && room=$1
        ((room < 15)) && room=0
        echo "$room"
    }
    pack() {  # refresh the tarball (cheap: results are small)
        local parts=() p
        for p in results results-extra report logs env.json; do [ -e "$WORK/$p" ] && parts+=("$p"); done
        tar czf "$OUT/gpu-results.tgz.tmp" -C "$WORK" "${parts[@]}" 2>/dev/null &&
            mv "$OUT/gpu-results.tgz.tmp" "$OUT/gpu-results.tgz"
    }
    run_capped() {  # NAME CAP CMD...: output to $LOGS/NAME.log; sets RC and ELAPSED
        local name=$1 cap=$2 t0=$SECONDS
        shift 2
        timeout --signal=INT --kill-after=10 "$cap" "$@" >"$LOGS/$name.log" 2>&1
        RC=$?
        ELAPSED=$((SECONDS - t0))
    }
    last_error() {  # LOG: the most telling line of a failed step
        grep -E '^(error|FAIL|[A-Za-z]*Error)|[0-9]+ of [0-9]+ workload|Traceback|interrupted' "$1" | tail -n 1
    }
    bench_step() {  # NAME CAP DEST [wrapper options] -- bench run arguments; sets RUN_DIR and RC
        local name=$1 dest=$3 cap wrapper=()
        cap=$(cap_for "$2")
        shift 3
        while [ "$1" != -- ]; do wrapper+=("$1"); shift; done
        shift
        RUN_DIR=""
        if ((cap == 0)); then
            RC=125
            record "$name" SKIP "out of time ($(left)s left of the ${BUDGET}s budget)" 0
            return
        fi
        echo "-- $name (cap ${cap}s): python -m bench run $* --out ${dest#"$WORK"/}"
        ls -1 "$dest" >"$WORK/before.txt"
        # Compile steps get their own inductor/Triton caches: a compile stopped at its cap can leave a
        # truncated artifact behind ("file too short"), which would break the next compile step.
        local cache_env=()
        [[ " $* " == *" --compile "* ]] &&
            cache_env=(TORCHINDUCTOR_CACHE_DIR="$WORK/inductor/$name" TRITON_CACHE_DIR="$WORK/triton/$name")
        run_capped "$name" "$cap" env "${cache_env[@]}" "${CHECK[@]}" bench "${wrapper[@]}" -- run "$@" --out "$dest"
        RUN_DIR=$("${CHECK[@]}" newest-run "$dest" "$WORK/before.txt" | tail -n 1)
        grep -E '^\[wrapper\]|out of memory at batch' "$LOGS/$name.log" | sed 's/^/   /'
        if ((RC == 0)) && [ -n "$RUN_DIR" ]; then
            record "$name" PASS "${RUN_DIR##*/}" "$ELAPSED"
        elif ((RC == 124 || RC == 137)); then
            record "$name" FAIL "timed out after ${cap}s (run folder ${RUN_DIR##*/} keeps any finished rows)" "$ELAPSED"
        else
            record "$name" FAIL "exit $RC: $(last_error "$LOGS/$name.log")" "$ELAPSED"
            tail -n 15 "$LOGS/$name.log" | sed 's/^/   | /'
        fi
        pack
    }
    check_step() {  # NAME CMD...: a quick check; its output goes to the log, FAIL lines decide
        local name=$1 t0=$SECONDS out
        shift
        out=$("$@" 2>&1)
        local rc=$?
        # shellcheck disable=SC2001
        printf "%s\n" "$out" | sed 's/^/   /'
        if ((rc == 0)); then
            record "$name" PASS "$(echo "$out" | grep -E '^SKIP' | head -n 1)" $((SECONDS - t0))
        else
            record "$name" FAIL "$(echo "$out" | grep -c '^FAIL') violation(s); first: $(echo "$out" | grep -m1 '^FAIL' | cut -c6-)" \
                $((SECONDS - t0))
        fi
    }

    # ------------------------------------------------------------------------------- settings
    local DEV=cuda MODELS=paper BATCHES=1,64 HALF=fp16 RES=() FLOPS=()
    if [ "$REHEARSAL" = cpu ]; then
        DEV=cpu MODELS=casvit_xs,swiftformer_xs BATCHES=1,2 HALF=bf16 RES=(--resolution 64)
        echo "REHEARSAL on CPU: plumbing only, tiny settings; nothing here is a GPU result"
    fi
    # Modest timing: each workload >= 5 warmup iterations / 0.2 s, then >= 30 timed iterations / 0.3 s,
    # in one round (interleaving rounds only matters on a noisy shared CPU).
    local TIMING=(--warmup 5 --warmup-time 0.2 --iters 30 --min-time 0.3 --max-time 5 --rounds 1)
    echo "work folder: $WORK; deadline ${BUDGET}s + ${RESERVE}s for report; python: $PY"

    # ---------------------------------------------------------------------------- 1. probe
    local t0=$SECONDS
    {
        echo "\$ nvidia-smi"
        nvidia-smi 2>&1 || echo "(nvidia-smi not available)"
        echo
        "${CHECK[@]}" env --json "$WORK/env.json"
    } >"$OUT/env.txt" 2>&1
    sed -n '/^ *python:/,$p' "$OUT/env.txt" | sed 's/^/   /'
    record probe PASS "see env.txt" $((SECONDS - t0))

    # ------------------------------------------------------------- 2. install what is missing
    t0=$SECONDS
    local WHEELS="" w
    for w in "${GPU_WHEELS:-}" .cache/gpu-wheels .whl; do
        if [ -n "$w" ] && compgen -G "$w/*.whl" >/dev/null; then WHEELS=$w; break; fi
    done
    local TORCH_VERSION
    TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)')
    echo "torch==$TORCH_VERSION" >"$WORK/torch-pin.txt"
    # import names of the suite's runtime + test dependencies (onnx* and fvcore* are optional here)
    local REQUIRED=(numpy pandas matplotlib scipy psutil tqdm safetensors tabulate yaml PIL cpuinfo pytest pytest_benchmark)
    local OPTIONAL=(fvcore iopath yacs termcolor portalocker onnx onnxscript onnxruntime)
    local missing installed=() unavailable=() dist norm file
    mapfile -t missing < <("${CHECK[@]}" missing "${REQUIRED[@]}" "${OPTIONAL[@]}")
    for dist in "${missing[@]}"; do
        norm=$(echo "$dist" | tr 'A-Z-' 'a-z_')
        file=""
        [ -n "$WHEELS" ] && file=$(find "$WHEELS" -maxdepth 1 -iname "${norm}-*.whl" | sort | tail -n 1)
        if [ -n "$file" ] && "$PY" -m pip install -q --no-index --no-deps --no-cache-dir --no-compile \
            -c "$WORK/torch-pin.txt" "$file" >>"$LOGS/install.log" 2>&1; then
            installed+=("$dist")
        else
            unavailable+=("$dist")
        fi
    done
    mapfile -t missing < <("${CHECK[@]}" missing "${REQUIRED[@]}" "${OPTIONAL[@]}")
    local still_required
    still_required=$("${CHECK[@]}" missing "${REQUIRED[@]}" | tr '\n' ' ')
    if [ "$("$PY" -c 'import torch; print(torch.__version__)')" != "$TORCH_VERSION" ]; then
        record install FAIL "torch changed from $TORCH_VERSION: stop and restore the machine's torch" $((SECONDS - t0))
    elif [ -n "$still_required" ]; then
        record install FAIL "required packages missing (no wheel for them in ${WHEELS:-any folder}): $still_required" $((SECONDS - t0))
    else
        record install PASS "wheels: ${WHEELS:-none}; installed: ${installed[*]:-nothing}; still missing: ${missing[*]:-none}" \
            $((SECONDS - t0))
    fi
    if "${CHECK[@]}" missing fvcore | grep -q .; then
        FLOPS=(--no-flops)
        echo "   fvcore does not import: bench runs use --no-flops (no GMACs); test_cuda_run counts GMACs and will fail"
    fi
    local ORT_PATH=""  # onnxruntime-gpu goes into its own folder so the CPU onnxruntime stays intact
    if ! "$PY" -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' \
        >/dev/null 2>&1 && [ -n "$WHEELS" ]; then
        file=$(find "$WHEELS" -maxdepth 1 -iname 'onnxruntime_gpu-*.whl' | sort | tail -n 1)
        if [ -n "$file" ] && "$PY" -m pip install -q --no-index --no-deps --no-cache-dir --target "$WORK/ort-gpu" \
            "$file" >>"$LOGS/install.log" 2>&1; then
            ORT_PATH=$WORK/ort-gpu
        fi
    fi

    # ------------------------------------------------------------------------ 3. CUDA tests
    local cap
    cap=$(cap_for 90)
    t0=$SECONDS
    if ((cap == 0)); then
        record pytest-cuda SKIP "out of time" 0
    else
        echo "-- pytest-cuda (cap ${cap}s): python -m pytest tests/test_engine.py -k cuda -rA"
        run_capped pytest-cuda "$cap" "$PY" -m pytest tests/test_engine.py -k cuda -rA -p no:cacheprovider
        cp "$LOGS/pytest-cuda.log" "$OUT/pytest.log"
        grep -E '^(PASSED|FAILED|SKIPPED|ERROR)|^=+ .*(passed|failed|skipped|error)' "$LOGS/pytest-cuda.log" | sed 's/^/   /'
        if ((RC == 0)) && grep -q 'PASSED tests/test_engine.py::test_cuda_run' "$LOGS/pytest-cuda.log"; then
            record pytest-cuda PASS "test_cuda_run ran and passed" "$ELAPSED"
        elif ((RC == 0)) && [ "$REHEARSAL" = cpu ]; then
            record pytest-cuda PASS "rehearsal: exit 0, test_cuda_run skipped (no GPU), as expected here" "$ELAPSED"
        elif ((RC == 0)); then
            record pytest-cuda FAIL "exit 0 but test_cuda_run did not run (skipped or deselected)" "$ELAPSED"
        else
            record pytest-cuda FAIL "exit $RC: $(grep -E '^(FAILED|ERROR)' "$LOGS/pytest-cuda.log" | head -n 1)" "$ELAPSED"
        fi
    fi

    # --------------------------------------------------------------- 4. torch CUDA, paper set
    local BASE=(--backend torch --device "$DEV" --cache-dir "$WORK/cache" --no-progress "${TIMING[@]}")
    BASE+=("${FLOPS[@]}" "${RES[@]}")
    bench_step torch-fp32 90 "$RESULTS" -- "${BASE[@]}" --models "$MODELS" --batch-sizes "$BATCHES" --precision fp32
    local FP32_RUN=$RUN_DIR
    if [ "$REHEARSAL" != cpu ]; then
        bench_step torch-fp16 75 "$RESULTS" -- "${BASE[@]}" --models "$MODELS" --batch-sizes "$BATCHES" --precision fp16
    fi

    # ------------------------------------------------------------- 5. a real out-of-memory
    # Not `--batch-sizes 65536`: bench computes the fp32 reference logits on the host CPU at the
    # full batch before the GPU is touched, and again after every step down the ladder. casvit_t
    # needs ~19 MB of host memory per image for that (measured on CPU), so 65536 images need
    # ~1.2 TB: the 128 GiB host would be killed long before CUDA ran out of memory. Instead the CUDA
    # caching allocator is capped at 1 GiB (torch.cuda.set_per_process_memory_fraction): batch 512
    # of casvit_xs needs ~5 GiB (~11 MB/image fp32), so it raises a genuine torch.OutOfMemoryError
    # from the allocator, and the ladder 512 -> 384 -> 256 -> 192 -> 128 -> 96 ... steps down until
    # a batch fits; the host recomputes the reference for ~1600 images in all (a few seconds).
    if [ "$REHEARSAL" != cpu ]; then
        bench_step torch-oom 75 "$EXTRA" --mem-cap-gib 1 -- "${BASE[@]}" --models casvit_xs --batch-sizes 512 \
            --precision fp32 --warmup 2 --warmup-time 0 --iters 5 --min-time 0
        if [ -n "$RUN_DIR" ]; then
            check_step oom-row "${CHECK[@]}" check-oom "$RUN_DIR" --requested 512
        else
            record oom-row FAIL "no run directory from the out-of-memory step" 0
        fi
    else
        record torch-oom SKIP "rehearsal: out-of-memory retry is CUDA-only" 0
    fi

    bench_step torch-bf16 75 "$RESULTS" -- "${BASE[@]}" --models "$MODELS" --batch-sizes "$BATCHES" --precision bf16
    bench_step "torch-$HALF-channels-last" 75 "$RESULTS" -- "${BASE[@]}" --models "$MODELS" --batch-sizes "$BATCHES" \
        --precision "$HALF" --channels-last
    if [ "$REHEARSAL" != cpu ] || [ -n "${GPU_CHECK_REHEARSAL_COMPILE:-}" ]; then
        # One process per batch size: bench opens (and so compiles) every workload before timing any,
        # so a run stopped at its cap keeps nothing; and a second batch size in the same process would
        # likely be recompiled with a dynamic batch dimension (dynamo's automatic dynamic shapes), not static.
        local b
        for b in ${BATCHES//,/ }; do
            bench_step "torch-compile-b$b" 110 "$RESULTS" -- "${BASE[@]}" --models casvit_xs,swiftformer_xs \
                --batch-sizes "$b" --precision fp32 --compile
        done
    else
        record torch-compile SKIP "rehearsal: compile skipped (set GPU_CHECK_REHEARSAL_COMPILE=1 to include)" 0
    fi

    # ----------------------------------------- 6. fp32 parity failures: is TF32 the cause?
    # cuDNN convolutions use TF32 by default (torch.backends.cudnn.allow_tf32 = True), about 1e-3
    # relative error per layer, against an fp32 tolerance of 1e-3 relative to the largest logit.
    local PF=""
    [ -n "$FP32_RUN" ] && PF=$("${CHECK[@]}" parity-failed "$FP32_RUN")
    if [ -n "$PF" ] && [ "$REHEARSAL" != cpu ]; then
        bench_step tf32-off-diagnosis 45 "$EXTRA" --no-tf32 -- "${BASE[@]}" --models "$PF" --batch-sizes 1 \
            --precision fp32
        [ -n "$RUN_DIR" ] && "${CHECK[@]}" check-status "$RUN_DIR" | sed 's/^/   /'
        echo "   (fp32 parity failed for $PF; if the rows above are ok, TF32 convolutions are the cause)"
    fi

    # ------------------------------------------------------- 7. ONNX Runtime CUDA, if present
    local saved_path=$PYTHONPATH
    [ -n "$ORT_PATH" ] && export PYTHONPATH="$ORT_PATH:$PYTHONPATH"
    if "$PY" -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' \
        >/dev/null 2>&1 && [ "$REHEARSAL" != cpu ]; then
        bench_step onnx-cuda 60 "$RESULTS" -- --backend onnx --device cuda --models casvit_xs,swiftformer_xs \
            --batch-sizes 1 --precision fp32 --cache-dir "$WORK/cache" --no-progress "${TIMING[@]}" "${FLOPS[@]}"
        [ -n "$RUN_DIR" ] && check_step onnx-providers "${CHECK[@]}" check-onnx "$RUN_DIR"
    else
        record onnx-cuda SKIP "no CUDAExecutionProvider (onnxruntime-gpu not installed; its wheel is too large to carry)" 0
    fi
    export PYTHONPATH=$saved_path

    # ------------------------------------------------------------------------- 8. checks
    check_step rows-ok "${CHECK[@]}" check-status "$RESULTS" --expect-device "$DEV"
    local allow=()
    [ "$REHEARSAL" = cpu ] && allow=(--allow-none)
    check_step event-vs-wall "${CHECK[@]}" check-events "$RESULTS" "$EXTRA" "${allow[@]}"
    "${CHECK[@]}" check-events "$RESULTS" "$EXTRA" "${allow[@]}" >"$OUT/events.txt" 2>&1
    "${CHECK[@]}" overview "$RESULTS" 2>&1 | sed 's/^/   /'

    # ------------------------------------------------------------------------- 9. report
    cap=$(($(left) + RESERVE))
    ((cap > 60)) && cap=60
    ((cap < 20)) && cap=20
    echo "-- report (cap ${cap}s): python -m bench report --results results --out report"
    run_capped report "$cap" "$PY" -m bench report --results "$RESULTS" --out "$WORK/report"
    if ((RC == 0)) && [ -n "$(ls -A "$WORK/report" 2>/dev/null)" ]; then
        record report PASS "$(find "$WORK/report" -type f | wc -l) files" "$ELAPSED"
    else
        record report FAIL "exit $RC: $(last_error "$LOGS/report.log")" "$ELAPSED"
        tail -n 15 "$LOGS/report.log" | sed 's/^/   | /'
    fi
    pack
    local size
    size=$(du -k "$OUT/gpu-results.tgz" 2>/dev/null | cut -f1)
    ((${size:-0} > 15000)) && echo "   warning: gpu-results.tgz is ${size} KiB; files over 16 MiB do not come back"

    # ------------------------------------------------------------------------- summary
    local fails=0 i machine
    machine=$("$PY" - "$WORK/env.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
print(f"{e.get('gpu_name', 'no GPU')} (driver {e.get('gpu_driver')}, {e.get('gpu_memory_gib')} GiB), "
      f"torch {e.get('torch')} CUDA {e.get('torch_cuda_build')} cuDNN {e.get('cudnn')}, Python {e.get('python')}")
EOF
    )
    {
        [ "$REHEARSAL" = cpu ] && echo "REHEARSAL ON CPU: plumbing only, not a GPU result"
        echo "machine: $machine"
        for i in "${!S_NAME[@]}"; do
            [ "${S_RESULT[$i]}" = FAIL ] && fails=$((fails + 1))
            printf '%-4s  %-26s %4ss  %s\n' "${S_RESULT[$i]}" "${S_NAME[$i]}" "${S_SECS[$i]}" "${S_NOTE[$i]}"
        done
        if ((fails)); then
            echo "OVERALL: FAIL ($fails step(s) failed) in $((SECONDS - START))s"
        else
            echo "OVERALL: PASS in $((SECONDS - START))s"
        fi
    } >"$OUT/summary.txt"
    echo
    cat "$OUT/summary.txt"
    ((fails == 0))
}

main 2>&1 | tee "$OUT/check.log"
exit "${PIPESTATUS[0]}"
