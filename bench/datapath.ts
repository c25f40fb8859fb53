// Datapath benchmark: how fast images come through a synthesized mirror, and how much the
// upstream sends. Everything runs on 127.0.0.1 (an authenticated TLS upstream, the mirror
// with the exact config.yml and env mirror-synth synthesizes, containerd as the node), with
// fixed repetition counts: it always stops by itself.
//
//   node bench/datapath.mjs [--layer-mb 50] [--layers 4] [--concurrency 1,5,20] [--repeat 3]
//                           [--rate-mib 0] [--json]
//
// Part 1, a real node (containerd 1.6, `ctr content fetch`, no unpack): pull time straight
// from the upstream, cold through the mirror (empty cache), warm through the mirror.
// Part 2, N concurrent cold pulls through one fresh mirror (N "nodes" as concurrent HTTP clients
// that resolve, fetch every blob and verify its digest): pull time p50/p99 and the bytes the
// upstream sent divided by the unique blob bytes (1.0 = each blob fetched once), once with the
// synthesized front (nginx) before Distribution and once with Distribution alone ("none").
// --rate-mib N puts a TCP proxy capping the upstream's sending at N MiB/s (all connections
// together) between the upstream and everyone: a slow or rate-limited registry.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { synthesizeMirror } from '../src/index.js';
import { Containerd, hostsToml, writeHostsToml } from '../test/support/containerd.js';
import { buildImage, RegistryClient, type TestImage } from '../test/support/images.js';
import {
  type ManifestObject,
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../test/support/registry.js';
import { ThrottledProxy } from '../test/support/throttle.js';
import { ensureTool } from '../test/support/tools.js';
import { writeResults } from './results.js';

export interface DatapathOptions {
  readonly layerMiB: number;
  readonly layers: number;
  readonly concurrency: readonly number[];
  /** Repetitions of each part-1 measurement (the median is reported). */
  readonly repeat: number;
  /** Print the summary (DatapathSummary) as one JSON line at the end. @default false */
  readonly json?: boolean;
  /** Cap on the upstream's sending rate, MiB/s. @default - none */
  readonly rateMiB?: number;
  /** Where to write the JSON results. @default - not written */
  readonly resultsDir?: string;
}

/** What `--json` prints as the last line. */
export interface DatapathSummary {
  readonly pulls: { directSeconds: number; coldSeconds: number; warmSeconds: number };
  readonly concurrent: {
    n: number;
    upstreamBytesRatio: number;
    p50Seconds: number;
    p99Seconds: number;
    front: 'nginx' | 'none';
  }[];
}

interface Stat {
  readonly p50: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
}

export interface DatapathResult {
  readonly image: { layers: number; bytes: number; blobs: number };
  readonly node: { direct: Stat; coldMirror: Stat; warmMirror: Stat };
  readonly concurrent: {
    n: number;
    front: 'nginx' | 'none';
    cold: Stat;
    warm: Stat;
    upstreamBytes: number;
    uniqueBytes: number;
    ratio: number;
    upstreamBlobGets: number;
  }[];
}

const MiB = 1024 * 1024;

function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function stat(ms: readonly number[]): Stat {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), min: s[0], max: s[s.length - 1] };
}

const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const rate = (bytes: number, ms: number): string => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

export async function runDatapath(
  opts: DatapathOptions,
  log: (line: string) => void = console.log,
): Promise<DatapathResult> {
  const binary = await ensureTool('registry');
  const dir = await mkdtemp(join(tmpdir(), 'ms-bench-'));
  const user = 'bench';
  const password = 'bench-Pa55';
  let upstream: Upstream | undefined;
  let node: Containerd | undefined;
  let throttle: ThrottledProxy | undefined;
  const mirrors: SynthesizedMirror[] = [];
  try {
    upstream = await startUpstream({ binary, dir: join(dir, 'upstream'), username: user, password });
    const up = upstream;
    // Everyone reaches the upstream through `host`: the throttle when there is one.
    if (opts.rateMiB) {
      throttle = await ThrottledProxy.start({
        target: { host: '127.0.0.1', port: up.port },
        bytesPerSecond: opts.rateMiB * MiB,
      });
      log(`upstream rate-limited to ${opts.rateMiB} MiB/s (all connections together)`);
    }
    const host = throttle?.host ?? up.host;
    const client = new RegistryClient({ url: up.url, username: user, password, ca: up.ca.caCert });
    log(`building ${opts.layers} layers of ${opts.layerMiB} MiB (linux/amd64) and pushing them to the upstream...`);
    const image: TestImage = buildImage({
      repository: 'bench/big',
      tag: 'v1',
      layerSizes: Array.from({ length: opts.layers }, () => opts.layerMiB * MiB),
      platforms: ['linux/amd64'],
      seed: `bench-${opts.layers}x${opts.layerMiB}`,
    });
    await client.push(image);
    client.close();
    const bytes = image.bytes('linux/amd64');
    const blobs = image.blobDigests('linux/amd64').length;
    log(`image ${image.refByTag(host)}: ${(bytes / MiB).toFixed(1)} MiB in ${blobs} blobs`);

    const objects = synthesizeMirror(
      { name: 'bench', spec: { upstreamUrl: host, credentialsSecret: 'creds' }, source: 'bench/datapath.ts' },
      { namespace: 'bench' },
    ) as unknown as ManifestObject[];
    let mirrorCount = 0;
    const freshMirror = async (front = true): Promise<SynthesizedMirror> => {
      const m = await startSynthesizedMirror({
        binary,
        dir: join(dir, `mirror${++mirrorCount}`),
        name: 'bench',
        objects,
        secrets: { creds: { username: user, password } },
        upstreamCaFile: up.ca.caCert,
        front,
      });
      mirrors.push(m);
      return m;
    };
    const dispose = async (m: SynthesizedMirror): Promise<void> => {
      await m.dispose();
      mirrors.splice(mirrors.indexOf(m), 1);
      await rm(join(dir, `mirror${mirrorCount}`), { recursive: true, force: true });
    };

    // --- Part 1: a real node
    node = await Containerd.start(join(dir, 'node'));
    const n = node;
    const direct = join(dir, 'certs.d-direct');
    await writeHostsToml(direct, host, hostsToml(`https://${host}`, [{ url: `https://${host}`, ca: up.ca.caCert }]));
    const fetch = async (hostsDir: string, withUser: boolean): Promise<number> => {
      await n.forgetAll();
      const start = Date.now();
      await n.ctr(
        [
          'content',
          'fetch',
          '--hosts-dir',
          hostsDir,
          '--platform',
          'linux/amd64',
          ...(withUser ? ['--user', `${user}:${password}`] : []),
          image.refByTag(host),
        ],
        { SSL_CERT_FILE: up.ca.caCert },
        600_000,
      );
      const ms = Date.now() - start;
      const have = await n.content();
      for (const d of image.blobDigests('linux/amd64'))
        if (!have.includes(d)) throw new Error(`ctr fetch left out ${d}`);
      return ms;
    };
    const directMs: number[] = [];
    const coldMs: number[] = [];
    const warmMs: number[] = [];
    for (let i = 0; i < opts.repeat; i++) {
      directMs.push(await fetch(direct, true));
      const m = await freshMirror();
      const viaMirror = join(dir, `certs.d-mirror${mirrorCount}`);
      await writeHostsToml(viaMirror, host, hostsToml(`https://${host}`, [{ url: m.url }]));
      coldMs.push(await fetch(viaMirror, false));
      warmMs.push(await fetch(viaMirror, false));
      await dispose(m);
      log(
        `  node round ${i + 1}/${opts.repeat}: direct ${fmt(directMs[i])}, cold ${fmt(coldMs[i])}, warm ${fmt(warmMs[i])}`,
      );
    }
    await n.forgetAll();
    await n.stop();
    node = undefined;

    // --- Part 2: N concurrent cold pulls through one fresh mirror
    const concurrent: DatapathResult['concurrent'] = [];
    for (const [count, front] of opts.concurrency.flatMap((c) => [[c, 'nginx'] as const, [c, 'none'] as const])) {
      const m = await freshMirror(front === 'nginx');
      const mark = up.mark();
      const pullAll = async (): Promise<number[]> =>
        Promise.all(
          Array.from({ length: count }, async () => {
            const c = new RegistryClient({ url: m.url });
            const start = Date.now();
            try {
              const got = await c.pull(image.repository, image.tag);
              if (got.digest !== image.digest || got.bytes !== bytes)
                throw new Error(`pull gave ${got.digest}, ${got.bytes} bytes`);
            } finally {
              c.close();
            }
            return Date.now() - start;
          }),
        );
      const cold = await pullAll();
      const gets = up.blobGets(mark);
      const warm = await pullAll();
      await dispose(m);
      const row = {
        n: count,
        front,
        cold: stat(cold),
        warm: stat(warm),
        upstreamBytes: gets.bytes,
        uniqueBytes: bytes,
        ratio: gets.bytes / bytes,
        upstreamBlobGets: gets.total,
      };
      concurrent.push(row);
      log(
        `  N=${count} front=${front}: cold p50 ${fmt(row.cold.p50)} p99 ${fmt(row.cold.p99)}; warm p50 ${fmt(row.warm.p50)} p99 ${fmt(row.warm.p99)}; ` +
          `upstream sent ${(gets.bytes / MiB).toFixed(0)} MiB in ${gets.total} blob GETs = ${row.ratio.toFixed(2)}x the unique bytes`,
      );
    }

    const result: DatapathResult = {
      image: { layers: opts.layers, bytes, blobs },
      node: { direct: stat(directMs), coldMirror: stat(coldMs), warmMirror: stat(warmMs) },
      concurrent,
    };
    report(result, log);
    if (opts.resultsDir) await writeResults(opts.resultsDir, 'datapath', opts, result, log);
    if (opts.json) log(JSON.stringify(summary(result)));
    return result;
  } finally {
    await node?.stop();
    for (const m of mirrors) await m.dispose();
    await throttle?.stop();
    await upstream?.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

const seconds = (ms: number): number => Math.round(ms) / 1000;

/** The --json line: the shape issue 8 names. */
export function summary(r: DatapathResult): DatapathSummary {
  return {
    pulls: {
      directSeconds: seconds(r.node.direct.p50),
      coldSeconds: seconds(r.node.coldMirror.p50),
      warmSeconds: seconds(r.node.warmMirror.p50),
    },
    concurrent: r.concurrent.map((c) => ({
      n: c.n,
      upstreamBytesRatio: Math.round(c.ratio * 1000) / 1000,
      p50Seconds: seconds(c.cold.p50),
      p99Seconds: seconds(c.cold.p99),
      front: c.front,
    })),
  };
}

function report(r: DatapathResult, log: (line: string) => void): void {
  const b = r.image.bytes;
  log('');
  log(`Image: ${(b / MiB).toFixed(1)} MiB, ${r.image.layers} layers (+config). Loopback, 1 containerd node.`);
  log('node pull (ctr content fetch)   median     min     max   throughput');
  for (const [name, s] of [
    ['direct from upstream (TLS)', r.node.direct],
    ['cold through the mirror', r.node.coldMirror],
    ['warm through the mirror', r.node.warmMirror],
  ] as const) {
    log(
      `${name.padEnd(31)} ${fmt(s.p50).padStart(7)} ${fmt(s.min).padStart(7)} ${fmt(s.max).padStart(7)}   ${rate(b, s.p50)}`,
    );
  }
  log('');
  log(
    'concurrent cold pulls  front   cold p50   cold p99   warm p50   warm p99   upstream bytes / unique bytes   blob GETs upstream',
  );
  for (const c of r.concurrent) {
    log(
      `N=${String(c.n).padEnd(20)} ${c.front.padEnd(6)} ${fmt(c.cold.p50).padStart(8)}   ${fmt(c.cold.p99).padStart(8)}   ${fmt(c.warm.p50).padStart(8)}   ${fmt(c.warm.p99).padStart(8)}   ${c.ratio.toFixed(2).padStart(29)}   ${String(c.upstreamBlobGets).padStart(18)}`,
    );
  }
}
