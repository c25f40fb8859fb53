#!/usr/bin/env node
// Runner for bench/controller.ts: builds lib/ (the controller process runs the real binary),
// compiles the benchmark with the test support it imports, then runs it on a control plane
// of its own.
//
//   node bench/controller.mjs [--mirrors 200] [--resyncs 10] [--soak-restarts 3000] [--soak-churn 10]
//                             [--rss-mirrors 1000] [--unrelated-secrets 10000] [--quick]
//
// --quick: 20 mirrors, 3 resyncs, a soak of 300 informer restarts changing 5 mirrors a round,
// 100 mirrors and 500 Secrets for the memory phase.
// Results: printed, and written as JSON to bench/results/.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { compileBench, resultsDir, root } from './compile.mjs';

const { values } = parseArgs({
  options: {
    mirrors: { type: 'string', default: '200' },
    resyncs: { type: 'string', default: '10' },
    'soak-restarts': { type: 'string', default: '3000' },
    'soak-churn': { type: 'string', default: '10' },
    'rss-mirrors': { type: 'string', default: '1000' },
    'unrelated-secrets': { type: 'string', default: '10000' },
    quick: { type: 'boolean', default: false },
  },
});
const opts = values.quick
  ? { mirrors: 20, resyncs: 3, soakRestarts: 300, soakChurn: 5, rssMirrors: 100, unrelatedSecrets: 500 }
  : {
      mirrors: Number(values.mirrors),
      resyncs: Number(values.resyncs),
      soakRestarts: Number(values['soak-restarts']),
      soakChurn: Number(values['soak-churn']),
      rssMirrors: Number(values['rss-mirrors']),
      unrelatedSecrets: Number(values['unrelated-secrets']),
    };
for (const [k, v] of Object.entries(opts)) {
  if (!(Number.isInteger(v) && v >= 0 && v <= 20000)) throw new Error(`bench/controller: ${k} out of range: ${v}`);
}

// The controller process runs the real binary, so lib/ is built first.
execFileSync(
  process.execPath,
  [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')],
  {
    stdio: 'inherit',
  },
);
const { runControllerBench } = await import(compileBench('controller'));
await runControllerBench({ ...opts, root, resultsDir });
