#!/usr/bin/env node
// Runner for bench/datapath.ts: compiles it (with the test support and src it imports) with the
// project's tsc into node_modules/.cache/mirror-synth-bench, then runs it.
//
//   node bench/datapath.mjs [--layer-mb 50] [--layers 4] [--concurrency 1,5,20] [--repeat 3] [--quick]
//
// --quick: 4 x 4 MiB, N = 1,5, one repeat (a smoke run of a few seconds).
// Needs root, containerd (scripts/install-test-deps.sh) and the registry (tools/build.sh registry).
// Results: printed, and written as JSON to bench/results/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const out = join(root, 'node_modules', '.cache', 'mirror-synth-bench');

const { values } = parseArgs({
  options: {
    'layer-mb': { type: 'string', default: '50' },
    layers: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '1,5,20' },
    repeat: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
  },
});
const opts = values.quick
  ? { layerMiB: 4, layers: 4, concurrency: [1, 5], repeat: 1 }
  : {
      layerMiB: Number(values['layer-mb']),
      layers: Number(values.layers),
      concurrency: values.concurrency.split(',').map(Number),
      repeat: Number(values.repeat),
    };
for (const [k, v] of Object.entries(opts)) {
  const bad = Array.isArray(v) ? v.some((x) => !(x > 0 && x <= 100)) : !(v > 0 && v <= 1000);
  if (bad) throw new Error(`bench/datapath: --${k} out of range: ${v}`);
}

execFileSync(
  process.execPath,
  [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(here, 'datapath.tsconfig.json')],
  {
    stdio: 'inherit',
  },
);
// Compiled files find repo files relative to themselves: src/mirror.ts reads ../assets/node-agent.sh,
// test/support/tools.ts reads tools/<module>/go.mod and runs tools/build.sh.
mkdirSync(out, { recursive: true });
for (const dir of ['assets', 'tools']) {
  if (!existsSync(join(out, dir))) symlinkSync(join(root, dir), join(out, dir));
}

const { runDatapath } = await import(pathToFileURL(join(out, 'bench', 'datapath.js')).href);
await runDatapath({ ...opts, resultsDir: join(here, 'results') });
