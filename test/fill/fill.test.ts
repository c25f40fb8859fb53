// The streaming fill's own contract, against a plain HTTP origin standing in for Distribution
// (the e2e tests run it between Debian's nginx and a real Distribution): one transfer per digest
// however many clients ask; clients that come late get every byte from the first; a body whose
// sha256 is not the URL's digest, or that ends short, reaches no client whole.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, get, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { digestOwner, FillServer, PEER_HEADER } from '../../src/fill/fill.js';
import { parsePeers } from '../../src/fill/peers.js';
import { startHoldingServer } from '../support/faults/holding-server.js';
import { exchangeRaw } from '../support/primitives/raw-http.js';
import { waitFor } from '../support/primitives/wait.js';

interface Origin {
  server: Server;
  url: string;
  requests: string[];
  /** What the origin does with a request. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
}

async function startOrigin(): Promise<Origin> {
  const origin = { requests: [] as string[] } as Origin;
  origin.server = createServer((req, res) => {
    origin.requests.push(`${req.method} ${req.url}`);
    origin.handler(req, res);
  });
  await new Promise<void>((r) => origin.server.listen(0, '127.0.0.1', r));
  const addr = origin.server.address() as { port: number };
  origin.url = `http://127.0.0.1:${addr.port}`;
  return origin;
}

/** Sends `body` in `parts` pieces, waiting for `release()` before each piece after the first. */
function gatedBody(res: ServerResponse, body: Buffer, parts: number, gate: { wait: () => Promise<void> }): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
  void (async () => {
    const size = Math.ceil(body.length / parts);
    for (let i = 0; i < parts; i++) {
      if (i > 0) await gate.wait();
      res.write(body.subarray(i * size, (i + 1) * size));
    }
    res.end();
  })();
}

interface Fetched {
  status: number;
  etag?: string;
  body: Buffer;
  /** The response was cut (an error or close before its end). */
  cut: boolean;
  firstByteAt?: number;
}

function fetchRaw(url: string, onFirstByte?: () => void): Promise<Fetched> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let firstByteAt: number | undefined;
    const req = get(url, (res) => {
      res.on('data', (c: Buffer) => {
        if (firstByteAt === undefined) {
          firstByteAt = Date.now();
          onFirstByte?.();
        }
        chunks.push(c);
      });
      const done = (cut: boolean) =>
        resolve({ status: res.statusCode!, etag: res.headers.etag, body: Buffer.concat(chunks), cut, firstByteAt });
      res.on('end', () => done(!res.complete));
      res.on('error', () => done(true));
      res.on('aborted', () => done(true));
    });
    req.on('error', () => resolve({ status: 0, body: Buffer.concat(chunks), cut: true, firstByteAt }));
  });
}

function blobPath(body: Buffer): string {
  return `/v2/lib/app/blobs/sha256:${createHash('sha256').update(body).digest('hex')}`;
}

function gate(): { wait: () => Promise<void>; open: () => void } {
  let waiting: (() => void)[] = [];
  return {
    wait: () => new Promise<void>((r) => waiting.push(r)),
    open: () => {
      const w = waiting;
      waiting = [];
      for (const r of w) r();
    },
  };
}

describe('the streaming fill', () => {
  let dir: string;
  let origin: Origin;
  let fill: FillServer;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fill-'));
    origin = await startOrigin();
    fill = new FillServer({ distribution: origin.url, spoolDir: join(dir, 'spool') });
    url = `http://127.0.0.1:${await fill.listen(0, '127.0.0.1')}`;
  });
  afterEach(() => {
    origin.requests.length = 0;
  });
  afterAll(async () => {
    await fill?.close();
    origin?.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('makes one transfer for clients that come before and during it, and each gets every byte as it arrives', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 7);
    const g = gate();
    origin.handler = (_req, res) => gatedBody(res, body, 3, g);
    const path = blobPath(body);
    let firstBytes = 0;
    const early = Array.from({ length: 5 }, () => fetchRaw(url + path, () => firstBytes++));
    // The early clients get the first third before the origin sends more.
    await waitFor('the 5 early clients to get a byte', () => firstBytes === 5 || undefined, 10_000, 10);
    expect(origin.requests).toEqual([`GET ${path}`]);
    g.open();
    const late = fetchRaw(url + path, () => firstBytes++);
    await waitFor('the late client to get a byte', () => firstBytes === 6 || undefined, 10_000, 10);
    g.open();
    const results = await Promise.all([...early, late]);
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.cut).toBe(false);
      expect(r.body.equals(body)).toBe(true);
    }
    expect(origin.requests).toEqual([`GET ${path}`]);
    // the front caches the answer with the quoted digest as ETag: one client gets it, not each
    const digest = path.slice(path.lastIndexOf('/') + 1);
    expect(results.map((r) => r.etag).sort()).toEqual([`"${digest}"`, ...Array<string>(5).fill(digest)]);
    // the spool goes once the last client is done with it (its marker stays)
    await waitFor(
      'the spool to be emptied',
      async () => (await readdir(join(dir, 'spool'))).join() === '.mirror-synth-fill' || undefined,
      10_000,
      10,
    );
  });

  it('holds back the last byte until the digest is checked: a corrupt body reaches no client whole, and the next request fetches again', async () => {
    const good = randomBytes(256 * 1024);
    const path = blobPath(good);
    const bad = Buffer.from(good);
    bad[1000] ^= 0xff;
    const g = gate();
    origin.handler = (_req, res) => gatedBody(res, bad, 2, g);
    let firstBytes = 0;
    const clients = Array.from({ length: 3 }, () => fetchRaw(url + path, () => firstBytes++));
    await waitFor('the 3 clients to get a byte', () => firstBytes === 3 || undefined, 10_000, 10);
    g.open();
    for (const r of await Promise.all(clients)) {
      expect(r.cut).toBe(true);
      expect(r.body.length).toBeLessThan(good.length);
    }
    origin.handler = (_req, res) => res.writeHead(200, { 'content-length': String(good.length) }).end(good);
    const again = await fetchRaw(url + path);
    expect(again).toMatchObject({ status: 200, cut: false });
    expect(again.body.equals(good)).toBe(true);
    expect(origin.requests).toEqual([`GET ${path}`, `GET ${path}`]);
  });

  it('cuts every client when the origin ends a body short', async () => {
    const good = randomBytes(128 * 1024);
    const path = blobPath(good);
    origin.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': String(good.length) });
      res.write(good.subarray(0, 1000));
      setTimeout(() => res.destroy(), 50);
    };
    const results = await Promise.all([fetchRaw(url + path), fetchRaw(url + path)]);
    for (const r of results) expect(r.cut).toBe(true);
  });

  it("passes the origin's refusal to every waiting client, and anything not a digest GET straight through", async () => {
    const path = `/v2/lib/app/blobs/sha256:${'0'.repeat(64)}`;
    origin.handler = (_req, res) => {
      setTimeout(() => res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[]}'), 100);
    };
    const results = await Promise.all([fetchRaw(url + path), fetchRaw(url + path)]);
    for (const r of results) expect(r).toMatchObject({ status: 404, cut: false });
    expect(results[0].body.toString()).toBe('{"errors":[]}');
    expect(origin.requests).toEqual([`GET ${path}`]);
    origin.handler = (_req, res) => res.writeHead(200).end('tags');
    expect((await fetchRaw(`${url}/v2/lib/app/manifests/1.0`)).body.toString()).toBe('tags');
    expect((await fetchRaw(`${url}/v2/lib/app/manifests/1.0`)).body.toString()).toBe('tags');
    expect(origin.requests.slice(1)).toEqual(['GET /v2/lib/app/manifests/1.0', 'GET /v2/lib/app/manifests/1.0']);
  });

  it('serves GET and HEAD only, and forwards no request body: a body holding a second request reaches nothing', async () => {
    origin.handler = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': '2' }).end('ok');
    };
    const port = Number(new URL(url).port);
    const digest = `/v2/lib/app/blobs/sha256:${'2'.repeat(64)}`;
    const hidden = 'GET /v2/hidden/manifests/smuggled HTTP/1.1\r\nHost: h\r\n\r\n';
    for (const method of ['DELETE', 'POST', 'PUT', 'PATCH', 'OPTIONS']) {
      for (const path of [digest, '/v2/lib/app/manifests/1.0', '/']) {
        // the body announced by Content-Length holds a request; one more is pipelined behind it
        const raw =
          `${method} ${path} HTTP/1.1\r\nHost: h\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}` +
          'GET /v2/after HTTP/1.1\r\nHost: h\r\n\r\n';
        const got = await exchangeRaw(port, raw);
        expect(got.text.toLowerCase()).toContain('allow: get, head');
        // one answer, and the connection closed after it: nothing of the body is read as a request
        expect(got).toMatchObject({ statuses: [405], closed: true });
      }
    }
    // a GET or HEAD with a body, by length or chunked: refused, the connection closed
    for (const framing of [`Content-Length: ${hidden.length}\r\n\r\n${hidden}`, 'Transfer-Encoding: chunked\r\n\r\n']) {
      const got = await exchangeRaw(port, `GET ${digest} HTTP/1.1\r\nHost: h\r\n${framing}`);
      expect(got).toMatchObject({ statuses: [400], closed: true });
    }
    expect(origin.requests).toEqual([]);
    // what nodes send still goes through: a HEAD, and a GET of /v2/
    const head = await fetch(url + digest, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect((await fetchRaw(`${url}/v2/`)).body.toString()).toBe('ok');
    expect(origin.requests).toEqual([`HEAD ${digest}`, 'GET /v2/']);
  });

  it('answers 502 when Distribution is down', async () => {
    const down = new FillServer({ distribution: 'http://127.0.0.1:1', spoolDir: join(dir, 'spool-down') });
    const port = await down.listen(0, '127.0.0.1');
    try {
      const r = await fetchRaw(`http://127.0.0.1:${port}/v2/a/blobs/sha256:${'1'.repeat(64)}`);
      expect(r.status).toBe(502);
    } finally {
      await down.close();
    }
  });
});

describe("the streaming fill's bounds", () => {
  let dir: string;
  let origin: Origin;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fill-bounds-'));
    origin = await startOrigin();
  });
  afterEach(() => {
    origin.requests.length = 0;
  });
  afterAll(async () => {
    origin?.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function start(
    opts: Partial<ConstructorParameters<typeof FillServer>[0]>,
  ): Promise<{ fill: FillServer; url: string }> {
    const fill = new FillServer({ distribution: origin.url, spoolDir: join(dir, `spool-${Math.random()}`), ...opts });
    return { fill, url: url(await fill.listen(0, '127.0.0.1')) };
  }

  it('answers 503 beyond --max-clients and --max-transfers, and serves again once below', async () => {
    const { fill, url: base } = await start({ maxClients: 4, maxTransfers: 1 });
    const g = gate();
    try {
      const a = randomBytes(256 * 1024);
      const b = randomBytes(64 * 1024);
      origin.handler = (req, res) => gatedBody(res, req.url === blobPath(a) ? a : b, 2, g);
      let firstBytes = 0;
      const clients = Array.from({ length: 3 }, () => fetchRaw(base + blobPath(a), () => firstBytes++));
      await waitFor('3 clients to get a byte', () => firstBytes === 3 || undefined, 10_000, 10);
      // a client of another digest: one transfer at a time
      const other = await fetchRaw(base + blobPath(b));
      expect(other.status).toBe(503);
      expect(other.body.toString()).toContain('--max-transfers');
      // a fourth client of the same digest joins; a fifth is one too many
      clients.push(fetchRaw(base + blobPath(a), () => firstBytes++));
      await waitFor('the fourth client to get a byte', () => firstBytes === 4 || undefined, 10_000, 10);
      const fifth = await fetchRaw(base + blobPath(a));
      expect(fifth.status).toBe(503);
      expect(fifth.body.toString()).toContain('--max-clients');
      g.open();
      for (const r of await Promise.all(clients)) expect(r.body.equals(a)).toBe(true);
      // below both again
      origin.handler = (_req, res) => res.writeHead(200, { 'content-length': String(b.length) }).end(b);
      const later = await fetchRaw(base + blobPath(b));
      expect(later.status).toBe(200);
      expect(later.body.equals(b)).toBe(true);
      expect(fill.stats()).toMatchObject({ refused: 2, transfers: 2 });
    } finally {
      g.open();
      await fill.close();
    }
  });

  it('cuts a client that takes nothing for --client-timeout, and the others get every byte', async () => {
    const { fill, url: base } = await start({ clientTimeoutMs: 1000 });
    try {
      const body = randomBytes(16 << 20);
      origin.handler = (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);
      const path = blobPath(body);
      // a client that reads the headers and then nothing
      const stalled = new Promise<{ bytes: number; closedBy: 'server' | 'test' }>((resolve) => {
        const req = get(base + path, (res) => {
          res.pause();
          // the socket is not read either: look at it again after the timeout, reading what came
          setTimeout(() => {
            let bytes = 0;
            res.on('data', (c: Buffer) => (bytes += c.length));
            res.on('close', () => resolve({ bytes, closedBy: 'server' }));
            res.resume();
            setTimeout(() => {
              req.destroy();
              resolve({ bytes, closedBy: 'test' });
            }, 5000);
          }, 2500);
        });
        req.on('error', () => undefined);
      });
      const reader = await fetchRaw(base + path);
      expect(reader).toMatchObject({ status: 200, cut: false });
      expect(reader.body.equals(body)).toBe(true);
      const s = await stalled;
      expect(s.closedBy).toBe('server');
      expect(s.bytes).toBeLessThan(body.length);
      expect(fill.stats().cut).toBe(1);
    } finally {
      await fill.close();
    }
  });

  // Room in the spool (--spool-min-free): test/e2e/fill-hardening.test.ts, on a tmpfs of its own,
  // where free space does not move under the test as it may on a shared disk.

  it('empties only a spool of its own: a --spool directory holding anything else is refused, and nothing in it removed', async () => {
    const spool = join(dir, 'not-a-spool');
    await mkdir(join(spool, 'docker'), { recursive: true });
    await writeFile(join(spool, 'notes.txt'), 'keep me');
    await writeFile(join(spool, `7-${'a'.repeat(64)}`), 'a transfer left behind');
    const refused = new FillServer({ distribution: origin.url, spoolDir: spool });
    await expect(refused.listen(0, '127.0.0.1')).rejects.toThrow(
      `--spool ${spool} holds what mirror-synth fill did not write ("docker", "notes.txt")`,
    );
    expect((await readdir(spool)).sort()).toEqual([`7-${'a'.repeat(64)}`, 'docker', 'notes.txt']);
    // a directory of transfers left behind (a fill killed mid-transfer, before the marker existed): emptied, marked
    await rm(join(spool, 'docker'), { recursive: true });
    await rm(join(spool, 'notes.txt'));
    const own = new FillServer({ distribution: origin.url, spoolDir: spool });
    await own.listen(0, '127.0.0.1');
    await own.close();
    expect(await readdir(spool)).toEqual(['.mirror-synth-fill']);
  });
});

describe('the streaming fill before a hung Distribution', () => {
  it('gives a request it passes through up as soon as its client leaves, and answers 504 when Distribution sends nothing: no socket stays open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fill-hung-'));
    // takes every connection and request, and never answers
    const hung = await startHoldingServer((_req, res, hold) => hold(res));
    const fill = new FillServer({ distribution: hung.url, spoolDir: join(dir, 'spool'), passThroughTimeoutMs: 4000 });
    const port = await fill.listen(0, '127.0.0.1');
    try {
      // 30 probes that give up after 200 ms, as the readiness probe's wget -T 2 does (and nginx
      // then closes its connection to the fill)
      const paths = ['/', `/v2/a/blobs/sha256:${'3'.repeat(64)}`];
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => {
          const req = request({
            port,
            host: '127.0.0.1',
            path: paths[i % 2],
            method: i % 2 ? 'HEAD' : 'GET',
            agent: false,
          });
          req.on('error', () => undefined);
          req.end();
          return new Promise<void>((resolve) =>
            setTimeout(() => {
              req.destroy();
              resolve();
            }, 200),
          );
        }),
      );
      expect(await hung.connections()).toBeGreaterThan(0);
      // well before the timeout, the fill has closed every connection it opened for them
      await waitFor(
        'the fill to close its connections to Distribution',
        async () => (await hung.connections()) === 0 || undefined,
        2000,
        50,
      );
      // a client that waits gets a 504 (the front's fallback) once Distribution sent nothing for the timeout
      const started = Date.now();
      const r = await fetchRaw(`${url(port)}/`);
      expect(r.status).toBe(504);
      expect(Date.now() - started).toBeGreaterThanOrEqual(3900);
      await waitFor(
        'the fill to close its connection to Distribution',
        async () => (await hung.connections()) === 0 || undefined,
        2000,
        50,
      );
    } finally {
      await fill.close();
      await hung.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function url(port: number): string {
  return `http://127.0.0.1:${port}`;
}

describe('digest owners among replicas', () => {
  const names = ['m-0', 'm-1', 'm-2', 'm-3'].map((name) => ({ name }));
  const digests = Array.from({ length: 400 }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));

  it('spreads digests over the replicas, the same on every replica whatever the order it lists them in', () => {
    const counts = new Map<string, number>();
    for (const d of digests) {
      const owner = digestOwner(d, names)!.name;
      expect(digestOwner(d, [...names].reverse())!.name).toBe(owner);
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    for (const n of names) expect(counts.get(n.name)).toBeGreaterThan(60);
  });

  it('moves only the digests of a replica that leaves', () => {
    const without = names.filter((n) => n.name !== 'm-2');
    for (const d of digests) {
      const before = digestOwner(d, names)!.name;
      if (before !== 'm-2') expect(digestOwner(d, without)!.name).toBe(before);
    }
  });

  it('reads --peers', () => {
    expect(parsePeers('m-0=10.0.0.1:5000,m-1=m-1.svc:5000,m-2=[fd00::2]:5000')).toEqual([
      { name: 'm-0', address: '10.0.0.1:5000', ips: ['10.0.0.1'] },
      { name: 'm-1', address: 'm-1.svc:5000' },
      { name: 'm-2', address: '[fd00::2]:5000', ips: ['fd00::2'] },
    ]);
    expect(() => parsePeers('10.0.0.1:5000')).toThrow("a peer is <pod name>=<host>:<port>, got '10.0.0.1:5000'");
  });
});

describe('the streaming fill with replicas', () => {
  let dir: string;
  const servers: FillServer[] = [];
  const origins: Origin[] = [];
  afterAll(async () => {
    for (const f of servers) await f.close();
    for (const o of origins) o.server.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Two replicas, each a fill before an origin of its own; b owns the digest of `body`. */
  async function pair(
    body: Buffer,
    opts: { peerIdleTimeoutMs?: number } = {},
  ): Promise<{ a: string; origins: [Origin, Origin]; path: string; fill: FillServer }> {
    dir ??= await mkdtemp(join(tmpdir(), 'fill-peers-'));
    const path = blobPath(body);
    const hex = path.slice(-64);
    // names chosen so that the second owns this digest
    let names = ['x-0', 'x-1'];
    for (
      let i = 2;
      digestOwner(
        hex,
        names.map((name) => ({ name })),
      )!.name !== names[1];
      i++
    )
      names = ['x-0', `x-${i}`];
    const [oa, ob] = [await startOrigin(), await startOrigin()];
    origins.push(oa, ob);
    const fb = new FillServer({ distribution: ob.url, spoolDir: join(dir, `${names[1]}-spool`), self: names[1] });
    const portB = await fb.listen(0, '127.0.0.1');
    const peers = [
      { name: names[0], address: 'unused:1' },
      { name: names[1], address: `127.0.0.1:${portB}` },
    ];
    const fa = new FillServer({
      distribution: oa.url,
      spoolDir: join(dir, `${names[0]}-spool`),
      self: names[0],
      peers: () => peers,
      ...opts,
    });
    const portA = await fa.listen(0, '127.0.0.1');
    servers.push(fa, fb);
    return { a: `http://127.0.0.1:${portA}`, origins: [oa, ob], path, fill: fa };
  }

  it('fetches a digest another replica owns from that replica, which serves it from its own store', async () => {
    const body = randomBytes(512 * 1024);
    const {
      a,
      origins: [oa, ob],
      path,
    } = await pair(body);
    const seen: (string | undefined)[] = [];
    ob.handler = (req, res) => {
      seen.push(req.headers[PEER_HEADER] as string | undefined);
      res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    };
    oa.handler = (_req, res) => res.writeHead(500).end();
    const got = await fetchRaw(a + path);
    expect(got).toMatchObject({ status: 200, cut: false });
    expect(got.body.equals(body)).toBe(true);
    expect(oa.requests).toEqual([]);
    expect(ob.requests).toEqual([`GET ${path}`]);
  });

  it('goes on from its own store when the owner stops mid-body, and the client gets every byte once', async () => {
    const body = randomBytes(1024 * 1024);
    const {
      a,
      origins: [oa, ob],
      path,
    } = await pair(body);
    ob.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      res.write(body.subarray(0, 300 * 1024));
      setTimeout(() => res.destroy(), 50);
    };
    oa.handler = (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    const got = await fetchRaw(a + path);
    expect(got).toMatchObject({ status: 200, cut: false });
    expect(got.body.equals(body)).toBe(true);
    expect(oa.requests).toEqual([`GET ${path}`]);
  });

  it('uses its own store when the owner refuses (its front answers 404 when it cannot serve)', async () => {
    const body = randomBytes(64 * 1024);
    const {
      a,
      origins: [oa, ob],
      path,
    } = await pair(body);
    ob.handler = (_req, res) => res.writeHead(503).end();
    oa.handler = (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    const got = await fetchRaw(a + path);
    expect(got.body.equals(body)).toBe(true);
  });

  it("an owner's body that is not the digest (a byte flipped, the right length): starts over from its own store, the client whose bytes were right gets the blob, and that owner is not asked for it again", async () => {
    const body = randomBytes(512 * 1024);
    const {
      a,
      origins: [oa, ob],
      path,
    } = await pair(body);
    // the owner flips the last byte: every client has all but it (held back) when the digest fails
    const bad = Buffer.from(body);
    bad[bad.length - 1] ^= 0xff;
    ob.handler = (_req, res) => res.writeHead(200, { 'content-length': String(bad.length) }).end(bad);
    oa.handler = (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    const got = await fetchRaw(a + path);
    expect(got).toMatchObject({ status: 200, cut: false });
    expect(got.body.equals(body)).toBe(true);
    expect(ob.requests).toEqual([`GET ${path}`]);
    expect(oa.requests).toEqual([`GET ${path}`]);
    // the next request does not go to that owner
    const again = await fetchRaw(a + path);
    expect(again.body.equals(body)).toBe(true);
    expect(ob.requests).toHaveLength(1);
    expect(oa.requests).toHaveLength(2);
  });

  it('a byte flipped early: the client that got it is cut, never given a wrong blob; the next request comes whole from its own store', async () => {
    const body = randomBytes(512 * 1024);
    const {
      a,
      origins: [oa, ob],
      path,
    } = await pair(body);
    const bad = Buffer.from(body);
    bad[1000] ^= 0xff;
    ob.handler = (_req, res) => res.writeHead(200, { 'content-length': String(bad.length) }).end(bad);
    oa.handler = (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    const got = await fetchRaw(a + path);
    expect(got.cut).toBe(true);
    expect(got.body.length).toBeLessThan(body.length);
    const again = await fetchRaw(a + path);
    expect(again).toMatchObject({ status: 200, cut: false });
    expect(again.body.equals(body)).toBe(true);
    expect(ob.requests).toHaveLength(1);
  });

  it('an owner that stalls mid-body: goes on from its own store after the peer timeout, and that owner is not asked for it again', async () => {
    const body = randomBytes(1024 * 1024);
    const {
      a,
      origins: [oa, ob],
      path,
    } = await pair(body, { peerIdleTimeoutMs: 500 });
    const held: ServerResponse[] = [];
    ob.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      res.write(body.subarray(0, 300 * 1024));
      held.push(res);
    };
    oa.handler = (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    try {
      const got = await fetchRaw(a + path);
      expect(got).toMatchObject({ status: 200, cut: false });
      expect(got.body.equals(body)).toBe(true);
      await fetchRaw(a + path);
      expect(ob.requests).toHaveLength(1);
      expect(oa.requests).toHaveLength(2);
    } finally {
      for (const r of held) r.destroy();
    }
  });

  it('an owner that sends wrong bytes and then stalls: the whole is checked, starts over from its own store, and no client gets a wrong blob', async () => {
    const body = randomBytes(1024 * 1024);
    const {
      a,
      origins: [oa, ob],
      path,
      fill,
    } = await pair(body, { peerIdleTimeoutMs: 500 });
    const bad = Buffer.from(body);
    bad[100 * 1024] ^= 0xff;
    const held: ServerResponse[] = [];
    ob.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      res.write(bad.subarray(0, 300 * 1024));
      held.push(res);
    };
    oa.handler = (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    try {
      // one client from the start, which gets the flipped byte; one that comes once the owner is
      // given up, which gets it too unless it comes after the transfer started over
      const early = fetchRaw(a + path);
      await waitFor('the owner to be given up', () => oa.requests.length >= 1 || undefined, 10_000, 10).catch(
        (e: Error) => {
          throw new Error(
            `${e.message}: oa ${JSON.stringify(oa.requests)} ob ${JSON.stringify(ob.requests)} ${JSON.stringify(fill.stats())}`,
          );
        },
      );
      const late = fetchRaw(a + path);
      const [first, second] = await Promise.all([early, late]);
      expect(first.cut).toBe(true);
      expect(first.body.length).toBeLessThan(body.length);
      // never a whole wrong blob
      expect(second.cut || second.body.equals(body)).toBe(true);
      // the transfer started over from its own store: the next client gets the blob
      const next = await fetchRaw(a + path);
      expect(next).toMatchObject({ status: 200, cut: false });
      expect(next.body.equals(body)).toBe(true);
      expect(ob.requests).toEqual([`GET ${path}`]);
    } finally {
      for (const r of held) r.destroy();
    }
  });
});
