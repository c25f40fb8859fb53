// The streaming fill's own contract, against a plain HTTP origin standing in for Distribution
// (the e2e tests run it between Debian's nginx and a real Distribution): one transfer per digest
// however many clients ask; clients that come late get every byte from the first; a body whose
// sha256 is not the URL's digest, or that ends short, reaches no client whole.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { FillServer } from '../../src/fill/fill.js';

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
    await until(() => firstBytes === 5);
    expect(origin.requests).toEqual([`GET ${path}`]);
    g.open();
    const late = fetchRaw(url + path, () => firstBytes++);
    await until(() => firstBytes === 6);
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
    // the spool goes once the last client is done with it
    await until(async () => (await readdir(join(dir, 'spool'))).length === 0);
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
    await until(() => firstBytes === 3);
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

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
