#!/usr/bin/env bash
# One device call that measures everything the open issues ask a GPU for, most wanted first,
# within a time budget, so a short device lease is spent on measuring, not on typing.
#
# Here:   scripts/stage_gpu.sh   (stages .gl/ and .devbin/; AB_REV="<rev> ..." adds bases)
# Device: run tool, carry [".gl", ".devbin"], timeout_s ≈ BUDGET + 60, command
#         BUDGET=300 bash .devbin/on-device.sh bash scripts/on_gpu.sh [STEP ...]
#
# Steps (default: all, in this order): bench_topk checks_topk kernel_stats ab_base torch_peers
# tests tests_unchecked bench_attention checks_attention torch_extra topk_sweep bench_backward
# bench_rest sweep_checks (checks_*, sweep_checks, tests_unchecked and kernel_stats: the
# shader-check A/B). Each writes
# STEP.log (and our bench's STEP.json, rewritten after every case); a step that would overrun
# BUDGET seconds is cut to what is left, or skipped. Finally scripts/gpu_report.py turns it
# all into report.md: our times, GB/s against the measured copy bandwidth, and ratios to
# PyTorch. $OUT receives
# report.md and all.tgz (every log and JSON): the device tool brings back 8 files at most.
set -u
dest=${OUT:-/tmp/on_gpu}
out=$(mktemp -d)
mkdir -p "$dest"
budget=${BUDGET:-300}
size=${SIZE:-full} # SIZE=small: a dry run on lavapipe
bench=.devbin/bench
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(bench_topk checks_topk kernel_stats ab_base torch_peers tests
  tests_unchecked bench_attention checks_attention torch_extra topk_sweep bench_backward
  bench_rest sweep_checks)

# step NAME SECONDS CMD...: runs CMD with a timeout inside the budget, logging to $out/NAME.log.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget - SECONDS))
  if [ "$left" -lt 15 ]; then
    echo "== $name: skipped (budget spent)"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (≤ ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  echo "   rc=$? in $((SECONDS - t0))s; tail:"
  tail -n 4 "$out/$name.log" | sed 's/^/   /'
}

# Every bench process's first cases ran slow (2026-11-27, H200: the bandwidth probes and
# barrier chains 2.3-5x, the first radix case 18 ms against 4.4) while its 1 s spin-up ran
# before the seconds of building its cases. The bench now spins up after building, and in
# session 16's calls its probes matched this throwaway process's (242.7 against 244.5 µs),
# so the step is opt-in (WARM_UP=1) and spends no device time by default.
[ "${WARM_UP:-0}" = 1 ] &&
  step warm_up 20 $bench --size $size --kernel bandwidth --spin-up-ms 5000 --reps 3 --warmup 1

for s in "${steps[@]}"; do
  case $s in
  # 240 s: since session 17 every opt-in experiment is a case of its own (about 45 per
  # shape since session 18's split; the JSON is rewritten after each case, so a cut step
  # keeps what it measured, and 65536×4096 comes last). The radix tuning cases
  # (--radix-groups 32 / 2048, --sort-workgroup 512 / 1024, settled on the H200 in session
  # 15) left the step; radix is now the fallback where the row select cannot run.
  bench_topk) step "$s" 240 $bench --size $size --kernel topk --kernel dispatch_overhead \
    --kernel bandwidth --kernel topk_stages \
    --no-baseline --reps 10 --warmup 3 \
    --json "$out/$s.json" ;;
  torch_peers) step "$s" 120 env OUT="$out" python3 .devbin/torch_peers.py ;;
  topk_sweep) step "$s" 120 $bench --size $size --kernel topk_sweep --reps 5 --warmup 2 \
    --json "$out/$s.json" ;;
  bench_attention) step "$s" 90 $bench --size $size --kernel dense_attention \
    --kernel topk_attention --kernel gather_attention --reps 5 --warmup 1 --json "$out/$s.json" ;;
  torch_extra) step "$s" 90 env OUT="$out" python3 scripts/torch_extra.py ;;
  bench_backward) step "$s" 90 $bench --size $size --kernel dense_attention_backward \
    --kernel sparse_attention_backward --reps 3 --warmup 1 --json "$out/$s.json" ;;
  tests) step "$s" 90 env CI=true KNN_ATTENTION_DATA=.devbin/data .devbin/test-suite \
    --test-threads 4 topk:: topk_attention:: dense_attention:: sparse_attention_backward:: ;;
  # Staged with AB_REV="<rev> ..." (scripts/stage_gpu.sh): the same topk cases from each.
  # AB_ONLY="LABEL;LABEL": only those cases (bench --only, from 2026-11-28's bench on: an
  # older base has no such flag), so that a base's topk bench fits the step.
  ab_base) found=0
    only=()
    IFS=';' read -ra labels <<<"${AB_ONLY:-}"
    for l in "${labels[@]}"; do only+=(--only "$l"); done
    for z in .devbin/bench-base.*.gz; do
      [ -e "$z" ] && gunzip -c "$z" >"${z%.gz}" && chmod +x "${z%.gz}"
    done
    for b in .devbin/bench-base.*; do
      case $b in *.gz) continue ;; esac
      [ -x "$b" ] || continue
      found=1
      rev=${b##*.}
      step "$s.$rev" 60 "$b" --size $size --kernel topk --no-baseline --reps 10 \
        --warmup 3 "${only[@]}" --json "$out/$s.$rev.json"
    done
    [ $found = 1 ] || echo "== $s: skipped (no .devbin/bench-base.* staged)" ;;
  # The driver's register / workgroup-memory / spill counts per kernel (examples/kernel_stats.rs),
  # with all of wgpu's shader checks, with none, and with all but one of the two that can
  # change code generation (loop bounding: the library's default; index clamps).
  kernel_stats) for c in all none bounds,integer-division,zero-workgroup-memory \
      loop-bounding,integer-division,zero-workgroup-memory; do
      step "$s.$c" 60 .devbin/kernel_stats --shader-checks $c
    done
    # The wide one pass as built for rows of one tile (n ≤ 4096: no next tile loaded ahead).
    step kernel_stats_one_tile 30 .devbin/kernel_stats topk --constant WIDE_PREFETCH=0
    # ... taking four rows per workgroup, without and with the next row loaded ahead.
    step kernel_stats_rows 30 .devbin/kernel_stats topk --constant WIDE_PREFETCH=0 \
      --constant WIDE_ROWS=4
    step kernel_stats_rows_ahead 30 .devbin/kernel_stats topk --constant WIDE_ROWS=4
    # ... lean, admitting by bits and the floor's top level folded (TopkConfig::wide_lean,
    # wide_bit_tests, wide_floor_fold).
    step kernel_stats_lean_bits_fold 30 .devbin/kernel_stats topk --constant WIDE_PREFETCH=0 \
      --constant WIDE_LEAN=1 --constant WIDE_BIT_TESTS=1 --constant WIDE_FLOOR_FOLD=1
    # The row select as an H200 builds it (1024 threads, 4096 slots), plain and split with
    # the bucket sort (TopkConfig::select_split, select_buckets): at 1024 threads more than
    # 64 registers would not fit the register file.
    step kernel_stats_select 30 .devbin/kernel_stats topk --constant SEL_WG=1024 \
      --constant SEL_CAP=4096
    step kernel_stats_split 30 .devbin/kernel_stats topk --constant SEL_WG=1024 \
      --constant SEL_CAP=4096 --constant SEL_SPLIT=8 --constant SEL_BUCKET_SORT=1 ;;
  # The issue's top-k shapes (and the bandwidth probes: the barrier chain's loop) compiled
  # with all of wgpu's shader checks (the library's default drops loop bounding), then with
  # none and with all but index clamps (what the checks the default keeps cost), against
  # bench_topk of the same call (report: "Shader checks"). On an H200 loop bounding alone cost
  # the top-k kernels 1.4–2.7× (2026-11-27).
  checks_topk) for c in all none loop-bounding,integer-division,zero-workgroup-memory; do
      step "$s.$c" 60 $bench --size $size --kernel topk --kernel bandwidth --no-baseline \
        --sort-workgroup 1024 --reps 10 --warmup 3 --shader-checks $c --json "$out/$s.$c.json"
    done ;;
  # The attention kernels with all checks, against bench_attention of the same call.
  # topk_sweep with all checks and with none (report: one sweep table each).
  sweep_checks) for c in all none; do
      step "$s.$c" 120 $bench --size $size --kernel topk_sweep --reps 5 --warmup 2 \
        --shader-checks $c --json "$out/$s.$c.json"
    done ;;
  checks_attention) step "$s" 90 $bench --size $size --kernel dense_attention \
    --kernel topk_attention --kernel gather_attention --reps 5 --warmup 1 \
    --shader-checks all --json "$out/$s.json" ;;
  # The GPU tests with every shader check off (tests/common: KNN_ATTENTION_SHADER_CHECKS).
  tests_unchecked) step "$s" 90 env CI=true KNN_ATTENTION_DATA=.devbin/data \
    KNN_ATTENTION_SHADER_CHECKS=none .devbin/test-suite --test-threads 4 topk:: \
    topk_attention:: dense_attention:: sparse_attention_backward:: ;;
  bench_rest) step "$s" 60 $bench --size $size --kernel rng_fill --kernel lev_attention \
    --kernel gumbel_max --kernel lazy_gumbel --reps 5 --warmup 1 --json "$out/$s.json" ;;
  *) echo "unknown step $s" ;;
  esac
done
python3 scripts/gpu_report.py "$out" >"$out/report.md" 2>"$out/report.err" &&
  echo "== report: $dest/report.md" || cat "$out/report.err"
cp "$out/report.md" "$dest/" 2>/dev/null
tar czf "$dest/all.tgz" -C "$out" .
echo "total ${SECONDS}s"
