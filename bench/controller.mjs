#!/usr/bin/env node
// Runner for bench/controller.ts: builds lib/ (the controller process runs the real binary),
// compiles the benchmark with the test support it imports, then runs it on a control plane
// of its own.
//
//   node bench/controller.mjs [--mirrors 200] [--resyncs 10] [--rss-mirrors 1000] [--unrelated-secrets 10000] [--quick]
//
// --quick: 20 mirrors, 3 resyncs, 100 mirrors and 500 Secrets for the memory phase.
// Results: printed, and written as JSON to bench/results/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const out = join(root, 'node_modules', '.cache', 'mirror-synth-bench-controller');

const { values } = parseArgs({
  options: {
    mirrors: { type: 'string', default: '200' },
    resyncs: { type: 'string', default: '10' },
    'rss-mirrors': { type: 'string', default: '1000' },
    'unrelated-secrets': { type: 'string', default: '10000' },
    quick: { type: 'boolean', default: false },
  },
});
const opts = values.quick
  ? { mirrors: 20, resyncs: 3, rssMirrors: 100, unrelatedSecrets: 500 }
  : {
      mirrors: Number(values.mirrors),
      resyncs: Number(values.resyncs),
      rssMirrors: Number(values['rss-mirrors']),
      unrelatedSecrets: Number(values['unrelated-secrets']),
    };
for (const [k, v] of Object.entries(opts)) {
  if (!(Number.isInteger(v) && v >= 0 && v <= 20000)) throw new Error(`bench/controller: ${k} out of range: ${v}`);
}

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
execFileSync(process.execPath, [tsc, '-p', join(here, 'controller.tsconfig.json')], { stdio: 'inherit' });
// Compiled files find repo files relative to themselves (assets/node-agent.sh, tools/).
mkdirSync(out, { recursive: true });
for (const dir of ['assets', 'tools']) {
  if (!existsSync(join(out, dir))) symlinkSync(join(root, dir), join(out, dir));
}

const { runControllerBench } = await import(pathToFileURL(join(out, 'bench', 'controller.js')).href);
await runControllerBench({ ...opts, root, resultsDir: join(here, 'results') });
