// Issue 25, against the real components: the synthesized cache pod (Debian's nginx with the
// ConfigMap's nginx.conf, mirror-synth fill as its container runs it, Distribution behind them)
// before a real upstream (Distribution, TLS, htpasswd). What nodes never send (other methods,
// request bodies) reaches nothing behind the front, nor behind the fill.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { digestOwner } from '../../src/fill/fill.js';
import { synthesizeMirror } from '../../src/index.js';
import { fillTransfers, TEST_FILL_IMAGE } from '../support/components/fill.js';
import {
  type RegistryProcess,
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../support/components/registry.js';
import { ThrottledProxy } from '../support/faults/throttle.js';
import { buildImage, RegistryClient, type TestImage } from '../support/fixtures/images.js';
import { reservePorts } from '../support/primitives/ports.js';
import { exchangeRaw } from '../support/primitives/raw-http.js';
import { waitFor } from '../support/primitives/wait.js';

const NAME = 'fh';
const SECRET = 'upstream-creds';
const USER = 'mirror-bot';
const PASSWORD = 'fh-Pa55word';

/** A request hidden in a body: what a smuggler wants Distribution to serve. */
const HIDDEN = 'GET /v2/smuggled/manifests/latest HTTP/1.1\r\nHost: h\r\nUser-Agent: smuggled\r\n\r\n';

/** `method path` with HIDDEN as its body (Content-Length framed), and one more request pipelined behind. */
function withHiddenBody(method: string, path: string): string {
  return (
    `${method} ${path} HTTP/1.1\r\nHost: h\r\nContent-Length: ${HIDDEN.length}\r\n\r\n${HIDDEN}` +
    'GET /v2/ HTTP/1.1\r\nHost: h\r\nUser-Agent: after\r\nConnection: close\r\n\r\n'
  );
}

/**
 * Every request Distribution took since `mark` (a length of its access log, which has a line for
 * every request, whatever its route), as `METHOD URI (User-Agent)`, once a request the test sends
 * after them has been logged: anything the steps before made it serve is logged by then.
 */
async function servedSince(distribution: RegistryProcess, mark: number): Promise<string[]> {
  await fetch(`${distribution.url}/v2/`, { headers: { 'user-agent': 'sentinel' } });
  const requests = (): string[] =>
    distribution.accessLog.slice(mark).flatMap((l) => {
      const m = /"(\S+) (\S+) HTTP\/[\d.]+" \d+ \d+ "[^"]*" "([^"]*)"/.exec(l);
      return m ? [`${m[1]} ${m[2]} (${m[3]})`] : [`unparsed: ${l}`];
    });
  await waitFor(
    'Distribution to log the sentinel',
    () => requests().some((r) => r.endsWith('(sentinel)')) || undefined,
  );
  await sleep(300);
  return requests().filter((r) => !r.endsWith('(sentinel)'));
}

const execFileAsync = promisify(execFile);

/** TCP connections established to 127.0.0.1:`port`, counted at the connecting end (`ss`). */
async function connectionsTo(port: number): Promise<number> {
  const { stdout } = await execFileAsync('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`]);
  return stdout.split('\n').filter(Boolean).length;
}

/** What one client of the storm got. */
interface StormResult {
  readonly status: number;
  readonly bytes: number;
  /** The body ended at its Content-Length and its sha256 is the digest asked for. */
  readonly verified: boolean;
  /** The body ended at its Content-Length (a whole body that is not verified would be a wrong blob). */
  readonly whole: boolean;
  /** The client gave up (200 s) rather than see the body end or the connection close. */
  readonly gaveUp: boolean;
}

/**
 * GETs `path` from 127.0.0.1:`port` on a connection of its own, takes the headers, then reads
 * nothing (not even from its socket: the server's writes back up) until `readFrom` resolves, then
 * reads the body, hashing it, to its end or until it finds the connection closed by the server.
 */
function stormClient(port: number, path: string, digest: string, readFrom: Promise<unknown>): Promise<StormResult> {
  return new Promise((resolve) => {
    let status = 0;
    let bytes = 0;
    let done = false;
    let gaveUp = false;
    const hash = createHash('sha256');
    const finish = (whole: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      resolve({ status, bytes, whole, gaveUp, verified: whole && `sha256:${hash.digest('hex')}` === digest });
    };
    const req = request({ port, host: '127.0.0.1', path, agent: false }, (res) => {
      status = res.statusCode ?? 0;
      res.pause();
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      res.on('end', () => finish(res.complete));
      res.on('close', () => finish(false));
      res.on('error', () => finish(false));
      void readFrom.then(() => res.resume());
    });
    const deadline = setTimeout(() => {
      gaveUp = true;
      req.destroy();
    }, 200_000);
    req.on('error', () => finish(false));
    req.end();
  });
}

/** A GET in progress: when its first body byte came, and what it got in the end. */
interface Get {
  readonly firstByte: Promise<void>;
  readonly done: Promise<{ status: number; digest: string; fallback?: string }>;
}

function get(url: string): Get {
  let firstByte!: () => void;
  const first = new Promise<void>((r) => (firstByte = r));
  const done = new Promise<{ status: number; digest: string; fallback?: string }>((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      const hash = createHash('sha256');
      res.on('data', (c: Buffer) => {
        firstByte();
        hash.update(c);
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          digest: `sha256:${hash.digest('hex')}`,
          ...(typeof res.headers['x-mirror-fallback'] === 'string'
            ? { fallback: res.headers['x-mirror-fallback'] }
            : {}),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return { firstByte: first, done };
}

describe('issue 25: the fill and the front', () => {
  let dir: string;
  let upstream: Upstream;
  let client: RegistryClient;
  let images = 0;

  async function newImage(layerSizes: number[]): Promise<TestImage> {
    const image = buildImage({ repository: `fh/app${++images}`, tag: '1.0', layerSizes, platforms: ['linux/amd64'] });
    await client.push(image);
    return image;
  }

  /** The synthesized cache pod on loopback; with `replica`, that replica of a mirror of two. */
  function startMirror(
    sub: string,
    fill: 'whole' | 'streaming',
    fillArgs?: readonly string[],
    upstreamHost = upstream.host,
    replica?: { readonly index: number; readonly port: number; readonly peers: readonly string[] },
  ): Promise<SynthesizedMirror> {
    return startSynthesizedMirror({
      ...(fillArgs ? { fillArgs } : {}),
      ...(replica ? { replica: replica.index, port: replica.port, peers: [...replica.peers] } : {}),
      binary: inject('registryBinary'),
      dir: join(dir, sub),
      name: NAME,
      objects: synthesizeMirror(
        {
          name: NAME,
          spec: { upstreamUrl: upstreamHost, credentialsSecret: SECRET, fill, ...(replica ? { replicas: 2 } : {}) },
          source: 'fill-hardening',
        },
        { namespace: 'test', fillImage: TEST_FILL_IMAGE },
      ),
      secrets: { [SECRET]: { username: USER, password: PASSWORD } },
      upstreamCaFile: upstream.ca.caCert,
    });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ms-fh-'));
    upstream = await startUpstream({
      binary: inject('registryBinary'),
      dir: join(dir, 'upstream'),
      username: USER,
      password: PASSWORD,
    });
    client = new RegistryClient({ url: upstream.url, username: USER, password: PASSWORD, ca: upstream.ca.caCert });
  });

  afterAll(async () => {
    client?.close();
    await upstream?.dispose();
    if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
  });

  it('a storm of 800 clients of one cold blob straight to the fill, 300 reading after 5 s, 500 not at all: the fill stays inside the memory limit of its container, the 300 get the verified blob and the 500 are cut', async () => {
    // the fill as the pod runs it, but cutting a client that takes nothing for 30 s rather than 60 s
    const mirror = await startMirror('storm', 'streaming', ['--client-timeout', '30']);
    try {
      const image = await newImage([8 << 20]);
      const layer = image.platforms[0].layers[0];
      const path = `/v2/${image.repository}/blobs/${layer.digest}`;
      const fill = mirror.front!.fill!;
      const atRest = await fill.memory();
      const started = Date.now();
      // The first reads at once (as the front does, caching it), 299 after 5 s; 500 stall until
      // those are done and the fill's timeout has passed, then look at what they got. (This
      // process reads and hashes 300 bodies at once on a shared machine: a reader may well take
      // nothing for 10 s, which is why the timeout is 30 s here.)
      const client = (readFrom: Promise<unknown>) => stormClient(fill.port, path, layer.digest, readFrom);
      const readers = Promise.all([
        client(Promise.resolve()),
        ...Array.from({ length: 299 }, () => client(sleep(5000))),
      ]);
      const stalled = Promise.all(Array.from({ length: 500 }, () => client(readers.then(() => sleep(35_000)))));
      const [read, cut] = [await readers, await stalled];
      const seconds = (Date.now() - started) / 1000;
      const { peak } = await fill.memory();
      const tally = (rs: readonly StormResult[]) => ({
        verified: rs.filter((r) => r.verified).length,
        cut: rs.filter((r) => !r.whole && !r.gaveUp).length,
        gaveUp: rs.filter((r) => r.gaveUp).length,
        wrong: rs.filter((r) => r.whole && !r.verified).length,
      });
      const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
      console.log(
        `storm: ${seconds.toFixed(1)} s; the fill's RSS ${mib(atRest.rss)} at rest, peak ${mib(peak)}; ` +
          `readers ${JSON.stringify(tally(read))}, stalled ${JSON.stringify(tally(cut))}`,
      );
      // every client that read got the blob; the ones that took nothing for 30 s were cut; no wrong blob
      expect(tally(read)).toEqual({ verified: 300, cut: 0, gaveUp: 0, wrong: 0 });
      expect(tally(cut)).toEqual({ verified: 0, cut: 500, gaveUp: 0, wrong: 0 });
      // the fill container's memory limit (cache.ts: 192Mi)
      expect(peak).toBeLessThan(192 * 2 ** 20);
      expect(fill.running).toBe(true);
    } finally {
      await mirror.dispose();
    }
  });

  describe('the bounds, through the front', () => {
    let slow: ThrottledProxy;
    beforeAll(async () => {
      // 4 MiB/s: a 12 MiB layer takes 3 s to come
      slow = await ThrottledProxy.start({
        target: { host: '127.0.0.1', port: upstream.port },
        bytesPerSecond: 4 << 20,
      });
    });
    afterAll(async () => {
      await slow?.stop();
    });

    it('beyond --max-clients and --max-transfers the fill answers 503, which the front turns into its fallback 404: nodes pull from the upstream', async () => {
      const mirror = await startMirror('caps', 'streaming', ['--max-clients', '2', '--max-transfers', '1'], slow.host);
      try {
        const [a, b] = await Promise.all([newImage([12 << 20]), newImage([1 << 20])]);
        const layerA = a.platforms[0].layers[0];
        const layerB = b.platforms[0].layers[0];
        const urlA = `${mirror.url}/v2/${a.repository}/blobs/${layerA.digest}`;
        const urlB = `${mirror.url}/v2/${b.repository}/blobs/${layerB.digest}`;
        const first = [get(urlA), get(urlA)];
        await Promise.all(first.map((g) => g.firstByte));
        // a third node asking for the layer, and a node asking for another: the fill is at its bounds
        const third = await get(urlA).done;
        const other = await get(urlB).done;
        for (const g of [third, other]) expect(g).toMatchObject({ status: 404, fallback: 'distribution answered 503' });
        // the first two get the layer; then the other one comes through the mirror
        for (const g of await Promise.all(first.map((x) => x.done)))
          expect(g).toEqual({ status: 200, digest: layerA.digest });
        expect(await get(urlB).done).toEqual({ status: 200, digest: layerB.digest });
        expect(mirror.front!.fill!.log().some((l) => l.includes('"msg":"clients refused"'))).toBe(true);
      } finally {
        await mirror.dispose();
      }
    });

    it('a transfer the spool has no room for above --spool-min-free is answered 503 (the fallback 404), the one in progress goes on', async () => {
      // the spool on a filesystem of its own: 24 MiB, of which the default 10 % stays free
      const sub = 'spool-room';
      const spool = join(dir, sub, 'distribution', 'data', 'fill');
      await mkdir(spool, { recursive: true });
      await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'size=24m,uid=1000,gid=1000,mode=0755', 'tmpfs', spool]);
      let mirror: SynthesizedMirror | undefined;
      try {
        mirror = await startMirror(sub, 'streaming', [], slow.host);
        const [a, b] = await Promise.all([newImage([12 << 20]), newImage([12 << 20])]);
        const layerA = a.platforms[0].layers[0];
        const layerB = b.platforms[0].layers[0];
        const urlA = `${mirror.url}/v2/${a.repository}/blobs/${layerA.digest}`;
        const urlB = `${mirror.url}/v2/${b.repository}/blobs/${layerB.digest}`;
        const inProgress = get(urlA);
        await inProgress.firstByte;
        // the 12 MiB of A still to come and the 12 MiB of B: more than the 21.6 MiB above 10 % of 24 MiB
        expect(await get(urlB).done).toMatchObject({ status: 404, fallback: 'distribution answered 503' });
        expect(await inProgress.done).toEqual({ status: 200, digest: layerA.digest });
        // A's spool file gone, B fits
        expect(await get(urlB).done).toEqual({ status: 200, digest: layerB.digest });
        expect(mirror.front!.fill!.log().some((l) => l.includes('--spool-min-free'))).toBe(true);
      } finally {
        await mirror?.dispose();
        await execFileAsync('umount', [spool]);
      }
    });
  });

  it('replicas: an owner replica answering 200 with the right length and a byte flipped: the fill starts over from its own Distribution, and does not ask that owner for the digest again', async () => {
    const pods = [0, 1].map((i) => ({ name: `registry-mirror-${NAME}-${i}`, index: i }));
    // Replica 1 is a stand-in for an owner's front that flips one byte of every blob it serves
    // (at `flips`' offset for it: the last byte, or one early on).
    const flips = new Map<string, number>();
    const asked: string[] = [];
    const imagesByDigest: Record<string, TestImage> = {};
    const owner = createServer((req, res) => {
      asked.push(req.url ?? '');
      const digest = /(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1] ?? '';
      const good = Object.values(imagesByDigest)
        .find((i) => i.blobs.has(digest))
        ?.blobs.get(digest);
      if (!good) return void res.writeHead(404).end();
      const bad = Buffer.from(good);
      const at = flips.get(digest) ?? bad.length - 1;
      bad[at] ^= 0xff;
      res.writeHead(200, { 'content-length': String(bad.length), 'docker-content-digest': digest }).end(bad);
    });
    await new Promise<void>((r) => owner.listen(0, '127.0.0.1', r));
    const ownerPort = (owner.address() as { port: number }).port;
    /** A one-layer image whose layer replica 1 owns. */
    const ownedImage = async (): Promise<{ image: TestImage; digest: string }> => {
      for (;;) {
        const image = await newImage([4 << 20]);
        const digest = image.platforms[0].layers[0].digest;
        imagesByDigest[digest] = image;
        if (digestOwner(digest.slice('sha256:'.length), pods)!.index === 1) return { image, digest };
      }
    };
    const [front] = await reservePorts(1);
    const mirror = await startMirror('owner', 'streaming', undefined, undefined, {
      index: 0,
      port: front,
      peers: [`127.0.0.1:${front}`, `127.0.0.1:${ownerPort}`],
    });
    const node = new RegistryClient({ url: mirror.url });
    try {
      // the last byte flipped: the fill holds it back, finds the digest wrong, starts over from its
      // own Distribution, whose bytes match what the node has: the node's first try gets the blob
      const last = await ownedImage();
      expect(await node.fetchBlob(last.image.repository, last.digest)).toMatchObject({ digest: last.digest });
      // a byte flipped early: the node that got it sees a failed transfer (never a wrong blob), and
      // its next try comes from this replica's own Distribution, not from that owner
      const early = await ownedImage();
      flips.set(early.digest, 1000);
      await expect(node.fetchBlob(early.image.repository, early.digest)).rejects.toThrow();
      expect(await node.fetchBlob(early.image.repository, early.digest)).toMatchObject({ digest: early.digest });
      expect(asked.filter((u) => u.endsWith(last.digest))).toHaveLength(1);
      expect(asked.filter((u) => u.endsWith(early.digest))).toHaveLength(1);
      const log = mirror.front!.fill!.log();
      expect(
        log.filter((l) => l.includes('fill from owner is not the digest, starting over from distribution')),
      ).toHaveLength(2);
    } finally {
      node.close();
      await mirror.dispose();
      await new Promise((r) => owner.close(r));
    }
  });

  it("replicas: X-Mirror-Synth-Peer is honoured only from a replica's address: a node that sends it still gets the layer through its owner", async () => {
    const pods = [0, 1].map((i) => ({ name: `registry-mirror-${NAME}-${i}`, index: i }));
    const fronts = await reservePorts(2);
    const replicas: SynthesizedMirror[] = [];
    try {
      for (const index of [0, 1])
        replicas.push(
          // the replicas' fronts, on 127.0.0.1: the address their requests to each other come from
          await startMirror(`peer-header-${index}`, 'streaming', undefined, undefined, {
            index,
            port: fronts[index],
            peers: fronts.map((p) => `127.0.0.1:${p}`),
          }),
        );
      /** Two layers replica 1 owns, asked of replica 0 with the header. */
      const owned: { repository: string; digest: string }[] = [];
      while (owned.length < 2) {
        const image = await newImage([256 * 1024]);
        const digest = image.platforms[0].layers[0].digest;
        if (digestOwner(digest.slice('sha256:'.length), pods)!.index === 1)
          owned.push({ repository: image.repository, digest });
      }
      const ask = (layer: { repository: string; digest: string }, localAddress: string) =>
        exchangeRaw(
          fronts[0],
          `GET /v2/${layer.repository}/blobs/${layer.digest} HTTP/1.1\r\nHost: h\r\nX-Mirror-Synth-Peer: me\r\nConnection: close\r\n\r\n`,
          { localAddress, waitMs: 30_000 },
        );
      // from a node's address (127.0.0.2): the header is not a replica's, the owner is asked
      expect((await ask(owned[0], '127.0.0.2')).statuses).toEqual([200]);
      // from a replica's address (127.0.0.1): served from replica 0's own Distribution, as a replica's request is
      expect((await ask(owned[1], '127.0.0.1')).statuses).toEqual([200]);
      const fill = replicas[0].front!.fill!;
      await fill.loggedTransfers(owned.map((l) => l.digest));
      const from = (digest: string) => fillTransfers(fill.log()).find((t) => t.uri.endsWith(digest))?.from ?? 'own';
      expect({ node: from(owned[0].digest), replica: from(owned[1].digest) }).toEqual({
        node: pods[1].name,
        replica: 'own',
      });
    } finally {
      for (const r of replicas) await r.dispose();
    }
  });

  describe.each(['whole', 'streaming'] as const)('spec.fill: %s', (fill) => {
    let mirror: SynthesizedMirror;
    let image: TestImage;
    beforeAll(async () => {
      mirror = await startMirror(`methods-${fill}`, fill);
      image = await newImage([64 * 1024]);
    });
    afterAll(async () => {
      await mirror?.dispose();
    });

    it('the front takes GET and HEAD only and passes no request body: what a body hides reaches nothing behind it', async () => {
      const layer = image.platforms[0].layers[0];
      const digestPath = `/v2/${image.repository}/blobs/${layer.digest}`;
      const mark = mirror.distribution.accessLog.length;
      const answers: Record<string, readonly number[]> = {};
      const want: Record<string, number[]> = {};
      for (const method of ['DELETE', 'POST', 'PUT', 'PATCH']) {
        for (const path of [digestPath, `/v2/${image.repository}/manifests/1.0`, '/v2/']) {
          const got = await exchangeRaw(mirror.front!.port, withHiddenBody(method, path));
          answers[`${method} ${path}`] = got.statuses.slice(0, 1);
          want[`${method} ${path}`] = [405];
        }
      }
      // a HEAD or GET with a body: served, the body dropped, then the request behind it
      for (const method of ['HEAD', 'GET']) {
        const got = await exchangeRaw(mirror.front!.port, withHiddenBody(method, digestPath));
        answers[`${method} ${digestPath}`] = got.statuses;
        want[`${method} ${digestPath}`] = [200, 200];
      }
      const served = await servedSince(mirror.distribution, mark);
      // nothing but the reads the front passed on: no other method, nothing hidden in a body
      expect(served.filter((r) => !/^(GET|HEAD) /.test(r) || r.includes('smuggled'))).toEqual([]);
      expect(answers).toEqual(want);
    });

    it('the front answers 404 for the catalog and for digests other than sha256, and passes none of them on', async () => {
      const layer = image.platforms[0].layers[0];
      const mark = mirror.distribution.accessLog.length;
      const paths = [
        '/v2/_catalog',
        '/v2/_catalog?n=100',
        `/v2/${image.repository}/blobs/sha512:${'a'.repeat(128)}`,
        `/v2/${image.repository}/manifests/sha384:${'a'.repeat(96)}`,
        `/v2/${image.repository}/blobs/sha256%3A${layer.digest.slice('sha256:'.length)}x`,
        `/v2/${image.repository}/blobs/${layer.digest.toUpperCase().replace('SHA256', 'sha256')}`,
      ];
      const answers: Record<string, number> = {};
      for (const path of paths) answers[path] = (await fetch(`${mirror.url}${path}`)).status;
      expect(await servedSince(mirror.distribution, mark)).toEqual([]);
      expect(answers).toEqual(Object.fromEntries(paths.map((p) => [p, 404])));
      // what nodes do ask still goes through
      expect((await fetch(`${mirror.url}/v2/${image.repository}/manifests/1.0`)).status).toBe(200);
      expect((await fetch(`${mirror.url}/v2/${image.repository}/blobs/${layer.digest}`)).status).toBe(200);
    });

    it('the readiness probe still answers through the front', async () => {
      expect(await mirror.front!.ready()).toMatchObject({ ok: true });
    });

    it.runIf(fill === 'streaming')(
      'readiness probes against a hung Distribution leave no connection behind: the fill gives up when the probe does',
      async () => {
        const distribution = mirror.distribution;
        const before = await connectionsTo(distribution.port);
        const pid = distribution.pid!;
        // stopped, Distribution's listening socket still takes connections (the kernel's backlog) and never answers
        process.kill(pid, 'SIGSTOP');
        try {
          const probes = await Promise.all(Array.from({ length: 10 }, () => mirror.front!.ready()));
          for (const p of probes) expect(p.ok).toBe(false);
          // each probe's wget gave up after 2 s, nginx closed its connection to the fill, and the
          // fill its own to Distribution, long before the fill's own timeout (60 s)
          await waitFor(
            'the connections to the stopped Distribution to close',
            async () => ((await connectionsTo(distribution.port)) <= before ? true : undefined),
            5000,
          ).catch(async (err: Error) => {
            throw new Error(`${err.message}: ${await connectionsTo(distribution.port)} open, ${before} before`);
          });
        } finally {
          process.kill(pid, 'SIGCONT');
        }
        expect(await mirror.front!.ready()).toMatchObject({ ok: true });
        // Distribution, woken, still serves what was in its backlog: let it, before the next test reads its log
        let seen = -1;
        await waitFor('Distribution to serve its backlog', async () => {
          const now = distribution.accessLog.length;
          const settled = now === seen;
          seen = now;
          await sleep(500);
          return settled || undefined;
        });
      },
    );

    it.runIf(fill === 'streaming')(
      'the fill itself takes GET and HEAD only: a DELETE whose body holds a request is refused, its body unread',
      async () => {
        const layer = image.platforms[0].layers[0];
        const fillPort = mirror.front!.fill!.port;
        const mark = mirror.distribution.accessLog.length;
        const answers: Record<string, { statuses: readonly number[]; closed: boolean }> = {};
        for (const path of [`/v2/${image.repository}/blobs/${layer.digest}`, '/v2/', '/']) {
          const { statuses, closed } = await exchangeRaw(fillPort, withHiddenBody('DELETE', path));
          answers[`DELETE ${path}`] = { statuses, closed };
        }
        const head = `HEAD /v2/${image.repository}/blobs/${layer.digest}`;
        const { statuses, closed } = await exchangeRaw(fillPort, withHiddenBody('HEAD', head.slice(5)));
        answers[head] = { statuses, closed };
        expect(await servedSince(mirror.distribution, mark)).toEqual([]);
        // each refused, the connection closed after the answer: nothing of the body read as a request
        for (const [request, answer] of Object.entries(answers))
          expect({ request, ...answer }).toEqual({
            request,
            statuses: [request.startsWith('HEAD') ? 400 : 405],
            closed: true,
          });
      },
    );
  });
});
