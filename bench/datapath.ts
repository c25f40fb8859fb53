// Datapath benchmark: how fast images come through a synthesized mirror, and how much the
// upstream sends. Everything runs on 127.0.0.1 (an authenticated TLS upstream, the mirror
// with the exact config.yml and env mirror-synth synthesizes, containerd as the node), with
// fixed repetition counts: it always stops by itself.
//
//   node bench/datapath.mjs [--layer-mb 50] [--layers 4] [--concurrency 1,5,20] [--repeat 3]
//                           [--rate-mib 0] [--replicas 1,3] [--json]
//
// Part 1, a real node (containerd 1.6, `ctr content fetch`, no unpack): pull time straight
// from the upstream, cold through the mirror (empty cache), warm through the mirror, and the
// first pull through a fresh mirror that pinned the image (spec.cache.pinned: mirror-synth warm
// fetched it before the node asked, as before a rollout) beside the cold one.
// Parts 1 and 2 run once per fill (--fills whole,streaming: spec.fill, nginx's own or mirror-synth
// fill).
// Part 2, N concurrent cold pulls through one fresh mirror (N "nodes" as concurrent HTTP clients
// that resolve, fetch every blob and verify its digest): pull time p50/p99 and the bytes the
// upstream sent divided by the unique blob bytes (1.0 = each blob fetched once), with the
// synthesized front (nginx) before Distribution for each fill, and with Distribution alone
// ("none"; --no-alone leaves it out). Each row also gives the longest any client went without a
// byte (what containerd's pull-progress timeout watches).
// Part 3 (--replicas R1,R2,...), replicas sharing one S3 bucket (spec.objectStorage, SeaweedFS
// from tools/): for each R and fill, R synthesized cache pods on one bucket prefix of their own
// (with the streaming fill, each digest fetched through its owner replica), and N
// (the largest --concurrency) concurrent pulls spread over them as a Service would, cold then
// warm: upstream bytes / unique bytes across the set, and the warm burst's aggregate MiB/s.
// Every concurrent row also gives firstByteSpreadSeconds: the spread between the clients' first
// byte of the image's largest layer (the first client's to the last one's).
// --rate-mib N puts a TCP proxy capping the upstream's sending at N MiB/s (all connections
// together) between the upstream and everyone: a slow or rate-limited registry.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FillMode } from '../src/api/names.js';
import { synthesizeMirror } from '../src/index.js';
import { Containerd, hostsToml, writeHostsToml } from '../test/support/components/containerd.js';
import { TEST_FILL_IMAGE } from '../test/support/components/fill.js';
import {
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../test/support/components/registry.js';
import { S3Server } from '../test/support/components/s3.js';
import { WarmProcess } from '../test/support/components/warm.js';
import { ThrottledProxy } from '../test/support/faults/throttle.js';
import { buildImage, RegistryClient, type TestImage } from '../test/support/fixtures/images.js';
import { type ManifestObject } from '../test/support/primitives/manifest.js';
import { reservePorts } from '../test/support/primitives/ports.js';
import { ensureTool } from '../test/support/primitives/tools.js';
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
  /** Part 3: replica counts to run over one shared bucket. @default - part 3 is skipped */
  readonly replicas?: readonly number[];
  /** The fills (spec.fill) to run parts 1 and 2 with, each against Distribution alone. @default ['whole', 'streaming'] */
  readonly fills?: readonly FillMode[];
  /** Part 2's rows with Distribution alone (N pulls fetch N copies: slow for big images). @default true */
  readonly alone?: boolean;
}

/** What `--json` prints as the last line. */
export interface DatapathSummary {
  readonly pulls: {
    directSeconds: number;
    coldSeconds: number;
    warmSeconds: number;
    /** Cold and warm `ctr content fetch` through the mirror with each fill, and their ratios to direct. */
    byFill: {
      fill: FillMode;
      coldSeconds: number;
      warmSeconds: number;
      coldOverDirect: number;
      warmOverDirect: number;
      /** The first pull through a fresh mirror that pinned the image beforehand, and the cold first pull over it. */
      prewarmedSeconds: number;
      coldOverPrewarmed: number;
    }[];
  };
  readonly concurrent: {
    n: number;
    layerMiB: number;
    rateMiB: number;
    upstreamBytesRatio: number;
    p50Seconds: number;
    p99Seconds: number;
    firstByteSpreadSeconds: number;
    /** The longest any client went without a byte of any blob (cold). */
    longestStallSeconds: number;
    /** Cold p99 over the N=1 row's p50 of the same front and fill (when --concurrency has 1). */
    p99OverSingle: number | null;
    front: 'nginx' | 'none';
    /** spec.fill of the front; null for Distribution alone. */
    fill: FillMode | null;
  }[];
  readonly replicas: {
    replicas: number;
    fill: FillMode;
    n: number;
    layerMiB: number;
    rateMiB: number;
    upstreamBytesRatio: number;
    p99Seconds: number;
    firstByteSpreadSeconds: number;
    aggregateMiBps: number;
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
  readonly node: {
    direct: Stat;
    /** The first fill's (as before fills were compared). */
    coldMirror: Stat;
    warmMirror: Stat;
    fills: { fill: FillMode; cold: Stat; warm: Stat; prewarmed: Stat }[];
  };
  readonly concurrent: {
    n: number;
    front: 'nginx' | 'none';
    fill: FillMode | null;
    /** Longest time any client went without a byte (cold), ms. */
    stall: number;
    cold: Stat;
    warm: Stat;
    upstreamBytes: number;
    uniqueBytes: number;
    ratio: number;
    upstreamBlobGets: number;
    /** Last client's first byte of the largest layer minus the first client's, ms (cold). */
    firstByteSpread: number;
  }[];
  readonly replicas: {
    replicas: number;
    fill: FillMode;
    n: number;
    cold: Stat;
    warm: Stat;
    ratio: number;
    firstByteSpread: number;
    /** N pulls' bytes over the warm burst's wall time. */
    aggregateMiBps: number;
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
  let s3: S3Server | undefined;
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

    const fills = opts.fills ?? ['whole', 'streaming'];
    const objectsFor = (fill: FillMode, pinned = false): ManifestObject[] =>
      synthesizeMirror(
        {
          name: 'bench',
          spec: {
            upstreamUrl: host,
            credentialsSecret: 'creds',
            fill,
            ...(pinned ? { cache: { pinned: [`${image.repository}:${image.tag}`] } } : {}),
          },
          source: 'bench/datapath.ts',
        },
        { namespace: 'bench', fillImage: TEST_FILL_IMAGE },
      );
    let mirrorCount = 0;
    const freshMirror = async (front = true, fill: FillMode = 'whole', pinned = false): Promise<SynthesizedMirror> => {
      const m = await startSynthesizedMirror({
        binary,
        dir: join(dir, `mirror${++mirrorCount}`),
        name: 'bench',
        objects: objectsFor(fill, pinned),
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
    const coldMs = new Map<FillMode, number[]>(fills.map((f) => [f, []]));
    const warmMs = new Map<FillMode, number[]>(fills.map((f) => [f, []]));
    const prewarmedMs = new Map<FillMode, number[]>(fills.map((f) => [f, []]));
    for (let i = 0; i < opts.repeat; i++) {
      directMs.push(await fetch(direct, true));
      const line = [`direct ${fmt(directMs[i])}`];
      for (const fill of fills) {
        const m = await freshMirror(true, fill);
        const viaMirror = join(dir, `certs.d-mirror${mirrorCount}`);
        await writeHostsToml(viaMirror, host, hostsToml(`https://${host}`, [{ url: m.url }]));
        coldMs.get(fill)!.push(await fetch(viaMirror, false));
        warmMs.get(fill)!.push(await fetch(viaMirror, false));
        await dispose(m);
        // a fresh mirror pinning the image: mirror-synth warm fetches it through the front, then the node's first pull
        const p = await freshMirror(true, fill, true);
        const warmer = await WarmProcess.start({
          objects: objectsFor(fill, true),
          name: 'bench',
          volume: join(dir, `mirror${mirrorCount}`, 'distribution', 'data'),
          dir: join(dir, `mirror${mirrorCount}`, 'pinned-list'),
          frontPort: p.port,
        });
        try {
          const [pinned] = await warmer.settled([`${image.repository}:${image.tag}`], 600_000);
          if (!pinned.warm) throw new Error(`mirror-synth warm: ${pinned.message}`);
        } finally {
          await warmer.stop();
        }
        const viaPinned = join(dir, `certs.d-mirror${mirrorCount}`);
        await writeHostsToml(viaPinned, host, hostsToml(`https://${host}`, [{ url: p.url }]));
        prewarmedMs.get(fill)!.push(await fetch(viaPinned, false));
        await dispose(p);
        line.push(
          `${fill}: cold ${fmt(coldMs.get(fill)![i])}, warm ${fmt(warmMs.get(fill)![i])}, pre-warmed ${fmt(prewarmedMs.get(fill)![i])}`,
        );
      }
      log(`  node round ${i + 1}/${opts.repeat}: ${line.join('; ')}`);
    }
    await n.forgetAll();
    await n.stop();
    node = undefined;

    /**
     * `count` concurrent pulls, the i-th through urls[i % urls.length] (as a Service spreads
     * nodes over replicas), each verified: their times, the spread of their first bytes of the
     * largest layer, and the wall time of the whole burst.
     */
    const storm = async (
      urls: readonly string[],
      count: number,
    ): Promise<{ ms: number[]; firstByteSpread: number; wallMs: number; stall: number }> => {
      const start = Date.now();
      const got = await Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const c = new RegistryClient({ url: urls[i % urls.length] });
          try {
            const pulled = await c.pull(image.repository, image.tag);
            if (pulled.digest !== image.digest || pulled.bytes !== bytes)
              throw new Error(`pull gave ${pulled.digest}, ${pulled.bytes} bytes`);
            return { ms: Date.now() - start, firstByteAt: pulled.firstLayerByteAt, stall: pulled.stallMs };
          } finally {
            c.close();
          }
        }),
      );
      const firsts = got.map((g) => g.firstByteAt);
      return {
        ms: got.map((g) => g.ms),
        firstByteSpread: Math.max(...firsts) - Math.min(...firsts),
        wallMs: Date.now() - start,
        stall: Math.max(...got.map((g) => g.stall)),
      };
    };

    // --- Part 2: N concurrent cold pulls through one fresh mirror
    const concurrent: DatapathResult['concurrent'] = [];
    const rows = opts.concurrency.flatMap((c) => [
      ...fills.map((f) => [c, 'nginx', f] as const),
      ...(opts.alone === false ? [] : [[c, 'none', null] as const]),
    ]);
    for (const [count, front, fill] of rows) {
      const m = await freshMirror(front === 'nginx', fill ?? 'whole');
      const mark = up.mark();
      const cold = await storm([m.url], count);
      const gets = up.blobGets(mark);
      const warm = await storm([m.url], count);
      await dispose(m);
      const row = {
        n: count,
        front,
        fill,
        stall: cold.stall,
        cold: stat(cold.ms),
        warm: stat(warm.ms),
        upstreamBytes: gets.bytes,
        uniqueBytes: bytes,
        ratio: gets.bytes / bytes,
        upstreamBlobGets: gets.total,
        firstByteSpread: cold.firstByteSpread,
      };
      concurrent.push(row);
      log(
        `  N=${count} front=${front}${fill ? ` fill=${fill}` : ''}: cold p50 ${fmt(row.cold.p50)} p99 ${fmt(row.cold.p99)}; warm p50 ${fmt(row.warm.p50)} p99 ${fmt(row.warm.p99)}; ` +
          `upstream sent ${(gets.bytes / MiB).toFixed(0)} MiB in ${gets.total} blob GETs = ${row.ratio.toFixed(2)}x the unique bytes; ` +
          `first-byte spread ${fmt(row.firstByteSpread)}, longest stall ${fmt(row.stall)}`,
      );
    }

    // --- Part 3: replicas sharing one bucket
    const replicas: DatapathResult['replicas'] = [];
    if (opts.replicas?.length) {
      const bucket = { accessKey: 'BENCHACCESSKEY', secretKey: 'bench-bucket-secret' };
      s3 = await S3Server.start({ dir: join(dir, 's3'), bucket: 'bench', ...bucket });
      const n = Math.max(...opts.concurrency);
      for (const [count, fill] of opts.replicas.flatMap((c) => fills.map((f) => [c, f] as const))) {
        const objs = synthesizeMirror(
          {
            name: 'bench',
            spec: {
              upstreamUrl: host,
              credentialsSecret: 'creds',
              replicas: count,
              fill,
              objectStorage: {
                s3: {
                  bucket: 'bench',
                  region: 'us-east-1',
                  endpoint: s3.endpoint,
                  credentialsSecret: 'bucket',
                  // a prefix per row: each starts cold
                  rootDirectory: `/bench-r${count}-${fill}`,
                },
              },
            },
            source: 'bench/datapath.ts',
          },
          { namespace: 'bench', fillImage: TEST_FILL_IMAGE },
        ) as unknown as ManifestObject[];
        const set: SynthesizedMirror[] = [];
        // the streaming fill's replicas find each other's fronts (test/support/components/fill.ts)
        const fronts = await reservePorts(count);
        for (let i = 0; i < count; i++) {
          const m = await startSynthesizedMirror({
            binary,
            dir: join(dir, `r${count}-${fill}-${i}`),
            replica: i,
            port: fronts[i],
            peers: fronts.map((port) => `127.0.0.1:${port}`),
            name: 'bench',
            objects: objs,
            secrets: { creds: { username: user, password }, bucket },
            upstreamCaFile: up.ca.caCert,
          });
          mirrors.push(m);
          set.push(m);
        }
        const urls = set.map((m) => m.url);
        const mark = up.mark();
        const cold = await storm(urls, n);
        const gets = up.blobGets(mark);
        const warm = await storm(urls, n);
        for (const m of set) {
          await m.dispose();
          mirrors.splice(mirrors.indexOf(m), 1);
        }
        const row = {
          replicas: count,
          fill,
          n,
          cold: stat(cold.ms),
          warm: stat(warm.ms),
          ratio: gets.bytes / bytes,
          firstByteSpread: cold.firstByteSpread,
          aggregateMiBps: (n * bytes) / MiB / (warm.wallMs / 1000),
        };
        replicas.push(row);
        log(
          `  replicas=${count} fill=${fill} N=${n}: cold p99 ${fmt(row.cold.p99)}, first-byte spread ${fmt(row.firstByteSpread)}, upstream ${row.ratio.toFixed(2)}x the unique bytes; ` +
            `warm p99 ${fmt(row.warm.p99)}, ${row.aggregateMiBps.toFixed(0)} MiB/s together`,
        );
      }
    }

    const result: DatapathResult = {
      image: { layers: opts.layers, bytes, blobs },
      node: {
        direct: stat(directMs),
        coldMirror: stat(coldMs.get(fills[0])!),
        warmMirror: stat(warmMs.get(fills[0])!),
        fills: fills.map((fill) => ({
          fill,
          cold: stat(coldMs.get(fill)!),
          warm: stat(warmMs.get(fill)!),
          prewarmed: stat(prewarmedMs.get(fill)!),
        })),
      },
      concurrent,
      replicas,
    };
    report(result, log);
    if (opts.resultsDir) await writeResults(opts.resultsDir, 'datapath', opts, result, log);
    if (opts.json) log(JSON.stringify(summary(result, opts)));
    return result;
  } finally {
    await node?.stop();
    for (const m of mirrors) await m.dispose();
    await throttle?.stop();
    await s3?.stop();
    await upstream?.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

const seconds = (ms: number): number => Math.round(ms) / 1000;

/** The --json line: the shape issues 8 and 16 name. */
export function summary(r: DatapathResult, opts: Pick<DatapathOptions, 'layerMiB' | 'rateMiB'>): DatapathSummary {
  const size = { layerMiB: opts.layerMiB, rateMiB: opts.rateMiB ?? 0 };
  return {
    pulls: {
      directSeconds: seconds(r.node.direct.p50),
      coldSeconds: seconds(r.node.coldMirror.p50),
      warmSeconds: seconds(r.node.warmMirror.p50),
      byFill: r.node.fills.map((f) => ({
        fill: f.fill,
        coldSeconds: seconds(f.cold.p50),
        warmSeconds: seconds(f.warm.p50),
        coldOverDirect: Math.round((f.cold.p50 / r.node.direct.p50) * 100) / 100,
        warmOverDirect: Math.round((f.warm.p50 / r.node.direct.p50) * 100) / 100,
        prewarmedSeconds: seconds(f.prewarmed.p50),
        coldOverPrewarmed: Math.round((f.cold.p50 / f.prewarmed.p50) * 100) / 100,
      })),
    },
    concurrent: r.concurrent.map((c) => ({
      n: c.n,
      ...size,
      upstreamBytesRatio: Math.round(c.ratio * 1000) / 1000,
      p50Seconds: seconds(c.cold.p50),
      p99Seconds: seconds(c.cold.p99),
      firstByteSpreadSeconds: seconds(c.firstByteSpread),
      longestStallSeconds: seconds(c.stall),
      p99OverSingle: single(r, c),
      front: c.front,
      fill: c.fill,
    })),
    replicas: r.replicas.map((c) => ({
      replicas: c.replicas,
      fill: c.fill,
      n: c.n,
      ...size,
      upstreamBytesRatio: Math.round(c.ratio * 1000) / 1000,
      p99Seconds: seconds(c.cold.p99),
      firstByteSpreadSeconds: seconds(c.firstByteSpread),
      aggregateMiBps: Math.round(c.aggregateMiBps),
    })),
  };
}

/** A row's cold p99 over the cold p50 of N=1 with the same front and fill, if that row was run. */
function single(r: DatapathResult, c: DatapathResult['concurrent'][number]): number | null {
  const one = r.concurrent.find((o) => o.n === 1 && o.front === c.front && o.fill === c.fill);
  return one ? Math.round((c.cold.p99 / one.cold.p50) * 100) / 100 : null;
}

function report(r: DatapathResult, log: (line: string) => void): void {
  const b = r.image.bytes;
  log('');
  log(`Image: ${(b / MiB).toFixed(1)} MiB, ${r.image.layers} layers (+config). Loopback, 1 containerd node.`);
  log('node pull (ctr content fetch)   median     min     max   throughput');
  for (const [name, s] of [
    ['direct from upstream (TLS)', r.node.direct] as const,
    ...r.node.fills.flatMap((f) => [
      [`cold, fill ${f.fill}`, f.cold] as const,
      [`warm, fill ${f.fill}`, f.warm] as const,
      [`first pull pinned, ${f.fill}`, f.prewarmed] as const,
    ]),
  ]) {
    log(
      `${name.padEnd(31)} ${fmt(s.p50).padStart(7)} ${fmt(s.min).padStart(7)} ${fmt(s.max).padStart(7)}   ${rate(b, s.p50)}`,
    );
  }
  for (const f of r.node.fills)
    log(`first pull, fill ${f.fill}: cold / pre-warmed (pinned) = ${(f.cold.p50 / f.prewarmed.p50).toFixed(2)}`);
  log('');
  log(
    'concurrent cold pulls  front            cold p50   cold p99   warm p50   warm p99   upstream bytes / unique bytes   blob GETs upstream',
  );
  for (const c of r.concurrent) {
    log(
      `N=${String(c.n).padEnd(20)} ${(c.fill ? `${c.front}/${c.fill}` : c.front).padEnd(15)} ${fmt(c.cold.p50).padStart(8)}   ${fmt(c.cold.p99).padStart(8)}   ${fmt(c.warm.p50).padStart(8)}   ${fmt(c.warm.p99).padStart(8)}   ${c.ratio.toFixed(2).padStart(29)}   ${String(c.upstreamBlobGets).padStart(18)}   first-byte spread ${fmt(c.firstByteSpread)}, longest stall ${fmt(c.stall)}`,
    );
  }
  if (r.replicas.length > 0) {
    log('');
    log(
      'replicas on one bucket   N   cold p99   first-byte spread   upstream bytes / unique   warm p99   warm MiB/s together',
    );
    for (const c of r.replicas) {
      log(
        `${`${c.replicas} (${c.fill})`.padEnd(22)} ${String(c.n).padStart(3)}   ${fmt(c.cold.p99).padStart(8)}   ${fmt(c.firstByteSpread).padStart(17)}   ${c.ratio.toFixed(2).padStart(23)}   ${fmt(c.warm.p99).padStart(8)}   ${c.aggregateMiBps.toFixed(0).padStart(19)}`,
      );
    }
  }
}
