#!/usr/bin/env node
// Runner for bench/fronts.ts: compiles it (bench/compile.mjs), then runs it.
//
//   node bench/fronts.mjs [--blob-mib 1024] [--rate-mib 64] [--concurrency 20]
//                         [--fronts none,nginx,varnish,squid,trafficserver] [--json] [--quick]
//
// --quick: a 64 MiB blob at 32 MiB/s, N = 5 (a smoke run of about a minute).
// --rate-mib: cap the upstream's sending rate (MiB/s, all connections together; 0 = no cap).
// --fronts: which to run, in order; "none" (straight to the upstream) first gives the direct
//   single cold GET the others are compared with.
// --skip-direct-burst: leave out "none"'s N concurrent GETs (N copies through the cap take N times a
//   single pull: 21 min for 20 x 4 GiB at 64 MiB/s).
// --json: print, as the last line, {"blobMiB", "rateMiB", "n", "fronts": [{front, singleColdSeconds,
//   singleColdRatio, upstreamBytesRatio, firstByteSpreadSeconds, p50Seconds, p99Seconds,
//   p99OverSingle, warmSeconds, warmBurstP99Seconds, allCorrect, meetsIssue16}]}.
// Needs root, nginx (scripts/install-test-deps.sh) and varnish, squid, trafficserver
// (sh scripts/install-test-deps.sh scripts/bench-deps.txt).
// Results: printed, and written as JSON to bench/results/.
import { parseArgs } from 'node:util';

import { compileBench, resultsDir } from './compile.mjs';

const ALL = ['none', 'nginx', 'varnish', 'squid', 'trafficserver'];
const { values } = parseArgs({
  options: {
    'blob-mib': { type: 'string', default: '1024' },
    'rate-mib': { type: 'string', default: '64' },
    concurrency: { type: 'string', default: '20' },
    fronts: { type: 'string', default: ALL.join(',') },
    json: { type: 'boolean', default: false },
    'skip-direct-burst': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
  },
});
const opts = values.quick
  ? { blobMiB: 64, rateMiB: 32, concurrency: 5 }
  : {
      blobMiB: Number(values['blob-mib']),
      rateMiB: Number(values['rate-mib']),
      concurrency: Number(values.concurrency),
    };
if (!(Number.isInteger(opts.blobMiB) && opts.blobMiB > 0 && opts.blobMiB <= 16384))
  throw new Error(`bench/fronts: --blob-mib out of range: ${opts.blobMiB}`);
if (!(opts.rateMiB >= 0 && opts.rateMiB <= 10000))
  throw new Error(`bench/fronts: --rate-mib out of range: ${opts.rateMiB}`);
if (!(Number.isInteger(opts.concurrency) && opts.concurrency > 0 && opts.concurrency <= 200))
  throw new Error(`bench/fronts: --concurrency out of range: ${opts.concurrency}`);
const fronts = values.fronts.split(',').filter(Boolean);
for (const f of fronts) if (!ALL.includes(f)) throw new Error(`bench/fronts: unknown front '${f}' (${ALL.join(', ')})`);

const { runFronts } = await import(compileBench('fronts'));
await runFronts({ ...opts, fronts, skipDirectBurst: values['skip-direct-burst'], json: values.json, resultsDir });
