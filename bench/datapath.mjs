#!/usr/bin/env node
// Runner for bench/datapath.ts: compiles it (bench/compile.mjs), then runs it.
//
//   node bench/datapath.mjs [--layer-mb 50] [--layers 4] [--concurrency 1,5,20] [--repeat 3]
//                           [--rate-mib N] [--replicas 1,3] [--fills whole,streaming]
//                           [--no-alone] [--json] [--quick]
//
// --fills: the fills (spec.fill) to run parts 1 and 2 with (default both).
// --no-alone: leave out part 2's rows with Distribution alone (N copies of a big image take long).
// --quick: 4 x 4 MiB, N = 1,5, one repeat (a smoke run of a few seconds).
// --replicas: also run R replicas sharing one S3 bucket (SeaweedFS, tools/build.sh seaweedfs)
//   for each R, with N = the largest --concurrency spread over them.
// --rate-mib: cap the upstream's sending rate (MiB/s, all connections together).
// --json: print, as the last line, {"pulls": {...}, "concurrent": [{n, layerMiB, rateMiB,
//   upstreamBytesRatio, p50Seconds, p99Seconds, firstByteSpreadSeconds, longestStallSeconds,
//   p99OverSingle, front, fill}], "replicas":
//   [{replicas, fill, n, layerMiB, rateMiB, upstreamBytesRatio, p99Seconds, firstByteSpreadSeconds,
//   aggregateMiBps}]} with rows for each N with the front ("nginx", once per fill) and without
//   ("none"); "pulls" has "byFill" (cold and warm ctr fetch per fill, and their ratio to direct; the
//   first pull through a mirror that pinned the image, prewarmedSeconds, and coldOverPrewarmed).
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
    'rate-mib': { type: 'string', default: '0' },
    replicas: { type: 'string', default: '' },
    fills: { type: 'string', default: 'whole,streaming' },
    'no-alone': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
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
  // a layer is one Buffer (< 4 GiB with its tar header)
  const bad = Array.isArray(v)
    ? v.some((x) => !(x > 0 && x <= 100))
    : !(v > 0 && v <= (k === 'layerMiB' ? 4000 : 1000));
  if (bad) throw new Error(`bench/datapath: --${k} out of range: ${v}`);
}

const rateMiB = Number(values['rate-mib']);
if (!(rateMiB >= 0 && rateMiB <= 10000)) throw new Error(`bench/datapath: --rate-mib out of range: ${rateMiB}`);
const replicas = values.replicas.split(',').filter(Boolean).map(Number);
if (replicas.some((r) => !(Number.isInteger(r) && r > 0 && r <= 10)))
  throw new Error(`bench/datapath: --replicas out of range: ${values.replicas}`);
const fills = values.fills.split(',').filter(Boolean);
if (fills.length === 0 || fills.some((f) => f !== 'whole' && f !== 'streaming'))
  throw new Error(`bench/datapath: --fills takes whole and/or streaming: ${values.fills}`);
const { runDatapath } = await import(compileBench('datapath'));
await runDatapath({
  ...opts,
  rateMiB: rateMiB || undefined,
  replicas,
  fills,
  alone: !values['no-alone'],
  json: values.json,
  resultsDir,
});
