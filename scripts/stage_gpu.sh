#!/usr/bin/env bash
# Stages a device run of scripts/on_gpu.sh: ../shared/device/prepare.sh builds every target
# (about 250 MB), then this keeps only what on_gpu.sh runs, stripped, to fit the device
# tool's 64 MiB carry limit.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
../shared/device/prepare.sh >/dev/null
keep="bench test-topk test-topk_attention test-dense_attention test-sparse_attention_backward on-device.sh torch_peers.py"
for f in .devbin/*; do
  case " $keep " in *" $(basename "$f") "*) ;; *) rm -f "$f" ;; esac
done
for b in .devbin/bench .devbin/test-*; do strip "$b"; done
du -sh .gl .devbin
echo 'device run: carry [".gl", ".devbin"], command: BUDGET=300 bash .devbin/on-device.sh bash scripts/on_gpu.sh'
