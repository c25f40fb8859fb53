#!/usr/bin/env node
// Runner for bench/datapath.ts: compiles it (bench/compile.mjs), then runs it.
//
//   node bench/datapath.mjs [--layer-mb 50] [--layers 4] [--concurrency 1,5,20] [--repeat 3] [--quick]
//
// --quick: 4 x 4 MiB, N = 1,5, one repeat (a smoke run of a few seconds).
// Needs root, containerd (scripts/install-test-deps.sh) and the registry (tools/build.sh registry).
// Results: printed, and written as JSON to bench/results/.
import { parseArgs } from 'node:util';

import { compileBench, resultsDir } from './compile.mjs';

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

const { runDatapath } = await import(compileBench('datapath'));
await runDatapath({ ...opts, resultsDir });
