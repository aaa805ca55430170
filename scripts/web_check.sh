#!/usr/bin/env bash
# Runs the crate in a browser: web/ (a wasm32 cdylib) builds kernels on the page's WebGPU
# device and compares them with the CPU reference, in headless Chromium on SwiftShader (no GPU
# needed). Prints the page's report; exits non-zero on any failure.
#
# Needs: the wasm32-unknown-unknown target, wasm-bindgen-cli 0.2.130 (the version web/ pins),
# node, Debian's chromium. Installs what is missing of the last three:
#   rustup target add wasm32-unknown-unknown
#   cargo install wasm-bindgen-cli --version 0.2.130     (about 3 minutes)
#   apt-get install -y chromium;  npm install --prefix target/web/node playwright-core
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
out=target/web/site
command -v wasm-bindgen >/dev/null || cargo install wasm-bindgen-cli --version 0.2.130
command -v chromium >/dev/null || apt-get install -y chromium
[ -d target/web/node/node_modules/playwright-core ] ||
  npm install --prefix target/web/node --no-audit --no-fund playwright-core
(cd web && CARGO_TARGET_DIR=../target/web cargo build --release --target wasm32-unknown-unknown)
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out/pkg" \
  target/web/wasm32-unknown-unknown/release/knn_attention_web_check.wasm
cp web/index.html "$out/"
cp web/drive.mjs target/web/node/
port=${PORT:-8765}
python3 -m http.server "$port" --directory "$out" >/dev/null 2>&1 &
server=$!
trap 'kill $server' EXIT
sleep 1
node target/web/node/drive.mjs "http://localhost:$port/index.html"
