#!/usr/bin/env bash
# Stages a device run of scripts/on_gpu.sh: ../shared/device/prepare.sh builds every target
# (about 250 MB), then this keeps only what on_gpu.sh runs, stripped, to fit the device
# tool's 64 MiB carry limit.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
../shared/device/prepare.sh >/dev/null
keep="bench kernel_stats test-suite on-device.sh torch_peers.py"
for f in .devbin/*; do
  case " $keep " in *" $(basename "$f") "*) ;; *) rm -rf "$f" ;; esac
done
# AB_REV="<rev> ...": also stage each revision's bench as .devbin/bench-base.<rev>, for
# on_gpu.sh's ab_base step (an A/B of kernel changes on the same machine in the same call).
for rev in ${AB_REV:-}; do
  wt=$(mktemp -d)/src
  git worktree add --detach "$wt" "$rev" >/dev/null
  # Its own target dir under target/, so dependencies stay built between stagings.
  (cd "$wt" && CARGO_TARGET_DIR="$OLDPWD/target/ab" cargo build --release --example bench) ||
    { git worktree remove --force "$wt"; echo "AB_REV $rev failed to build"; exit 1; }
  cp target/ab/release/examples/bench ".devbin/bench-base.$rev"
  git worktree remove --force "$wt"
done
for b in .devbin/bench* .devbin/test-*; do strip "$b"; done
# Compressed (7.5 → ~3 MB each), so that five revisions fit the carry limit beside the rest;
# on_gpu.sh unpacks them.
for b in .devbin/bench-base.*; do [ -e "$b" ] && gzip -f "$b"; done
# The real-model captures the GPU tests read (KNN_ATTENTION_DATA=.devbin/data there).
mkdir -p .devbin/data
cp ../shared/data/gpl3-layer{0,3,5}.safetensors .devbin/data/
du -sh .gl .devbin
echo 'device run: carry [".gl", ".devbin"], timeout_s 480, command: BUDGET=420 bash .devbin/on-device.sh bash scripts/on_gpu.sh'
