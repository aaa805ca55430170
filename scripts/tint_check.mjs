// Compiles WGSL with Dawn's compiler, Tint (what Chrome runs), through the `webgpu` npm
// package (dawn.node) on Dawn's null backend, so no GPU is needed. naga accepts some WGSL that
// Tint rejects (non-finite constant expressions, uniformity it cannot prove), so this is the
// portability check for browsers. tests/shaders.rs drives it; by hand:
//
//   npm install --prefix target/tint webgpu@0.6.2
//   node scripts/tint_check.mjs DIR [NODE_MODULES]    # DIR: one composed kernel per .wgsl
//
// For each file: create the module (parse, resolve, uniformity analysis), then a compute
// pipeline per entry point, for the default pipeline constants and for extreme values of the
// ones the host sets. Exit 0: all accepted; 1: something rejected (printed); 2: no Dawn.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [dir, modules = 'target/tint/node_modules'] = process.argv.slice(2);
let dawn;
try {
  dawn = await import(pathToFileURL(path.resolve(modules, 'webgpu', 'index.js')).href);
} catch (e) {
  console.log(`no Dawn: ${e.message}`);
  process.exit(2);
}
Object.assign(globalThis, dawn.globals);
// A global, so it is never collected: without it Dawn stops resolving promises.
globalThis.dawnGpu = dawn.create(['backend=null']);
const adapter = await globalThis.dawnGpu.requestAdapter();
if (!adapter) {
  console.log('no Dawn null adapter');
  process.exit(2);
}
const features = ['shader-f16', 'subgroups'].filter((f) => adapter.features.has(f));
// WebGPU's default limits (16 KiB of workgroup memory, 256 invocations), as our kernels assume.
const device = await adapter.requestDevice({ requiredFeatures: features });

// Values the host may give each pipeline constant, besides the default.
const overrides = {
  HEAD_DIM: [1, 80, 256], COMPACT_RUN: [1, 16], WIDE_PREFETCH: [0], PROFILE_STOP: [1, 2, 3, 4, 5],
  WIDE_ROWS: [4], WIDE_BIT_TESTS: [1], WIDE_LEAN: [1], WIDE_FLOOR_FOLD: [1], SEL_BUCKET_SORT: [1],
  VALUES_FROM_KEYS: [1], SEL_SPLIT: [8],
};

let rejected = 0;
let pipelines = 0;
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.wgsl')).sort()) {
  const code = fs.readFileSync(path.join(dir, file), 'utf8');
  const module = device.createShaderModule({ code });
  const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  for (const e of errors) {
    console.log(`${file}:${e.lineNum}:${e.linePos}: ${e.message}`);
  }
  rejected += errors.length;
  if (errors.length) continue;
  const entries = [...code.matchAll(/@compute[^\n]*\n(?:@[^\n]*\n)*fn\s+(\w+)/g)].map((m) => m[1]);
  const variants = [{}];
  for (const [name, values] of Object.entries(overrides)) {
    if (code.includes(`override ${name}`)) variants.push(...values.map((v) => ({ [name]: v })));
  }
  for (const entryPoint of entries) {
    for (const constants of variants) {
      device.pushErrorScope('validation');
      device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint, constants } });
      const e = await device.popErrorScope();
      if (e) {
        rejected++;
        console.log(`${file}: ${entryPoint} ${JSON.stringify(constants)}: ${e.message}`);
      } else {
        pipelines++;
      }
    }
  }
  console.log(`${file}: ok (${entries.length} entry points)`);
}
console.log(`Tint (${features.join(', ') || 'core'}): ${pipelines} pipelines built, ${rejected} rejected`);
device.destroy();
process.exit(rejected ? 1 : 0);
