#!/usr/bin/env node
// Synthesis benchmark: the real binary (compiled lib/, no TypeScript runtime compiler),
// cold (a new Node process each run), on 2, 1, 100 and 1000 generated mirrors.
// Reports wall time (median of RUNS) and peak RSS. Run: npm run bench:synth
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('../', import.meta.url).pathname;
const bin = join(root, 'bin', 'mirror-synth.js');
const RUNS = Number(process.env.RUNS ?? 5);
const hook = join(tmpdir(), 'mirror-synth-rss-hook.mjs');
writeFileSync(
  hook,
  "process.on('exit', () => process.stderr.write(`\\nMAXRSS ${process.resourceUsage().maxRSS}\\n`));\n",
);

function fixture(n) {
  const dir = mkdtempSync(join(tmpdir(), `bench-${n}-`));
  mkdirSync(join(dir, 'mirrors'));
  if (n === 'samples') {
    for (const f of ['quay.yaml', 'internal.yaml']) cpSync(join(root, 'mirrors', f), join(dir, 'mirrors', f));
    return dir;
  }
  for (let i = 0; i < n; i++) {
    const creds = i % 2 ? `\n  credentialsSecret: creds-${i}` : '';
    writeFileSync(
      join(dir, 'mirrors', `m${i}.yaml`),
      `apiVersion: k8s.osp.tech/v1\nkind: RegistryMirror\nmetadata:\n  name: m${i}\nspec:\n  upstreamUrl: registry-${i}.example.com${creds}\n`,
    );
  }
  return dir;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const [n, workers] of [['samples'], [1], [100], [1000, '1'], [1000]]) {
  const dir = fixture(n);
  const times = [];
  const rss = [];
  for (let r = 0; r < RUNS; r++) {
    rmSync(join(dir, 'dist'), { recursive: true, force: true });
    const t0 = process.hrtime.bigint();
    const env = { ...process.env, MIRROR_SYNTH_WORKERS: workers ?? '' };
    const res = spawnSync('node', ['--import', hook, bin, 'synth', '--quiet'], { cwd: dir, encoding: 'utf8', env });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (res.status !== 0) throw new Error(`synth failed for ${n}: ${res.stderr}`);
    times.push(ms);
    rss.push(Number(/MAXRSS (\d+)/.exec(res.stderr)?.[1] ?? 0) / 1024);
  }
  rows.push({
    mirrors: n === 'samples' ? '2 (samples)' : n,
    threads: workers ?? 'auto',
    wall_ms_median: Math.round(median(times)),
    wall_ms_max: Math.round(Math.max(...times)),
    peak_rss_mb: Math.round(Math.max(...rss)),
  });
  rmSync(dir, { recursive: true, force: true });
}
console.log(`node ${process.version}, ${RUNS} runs each, cold process per run`);
console.table(rows);
