// The streaming fill's Prometheus metrics, against a plain HTTP origin standing in for
// Distribution: what they say of concurrent readers of one cold blob, of a blob Distribution
// has stored, and of a body that is not its digest, read from the fill's own registry.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { FillServer } from '../../src/fill/fill.js';
import { waitFor } from '../support/primitives/wait.js';

const SIZE = 1 << 20;
const READERS = 5;

function digestHex(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

function fetchBody(url: string): Promise<{ status: number; body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    get(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = (): void =>
        resolve({ status: res.statusCode!, body: Buffer.concat(chunks), complete: res.complete });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    }).on('error', () => resolve({ status: 0, body: Buffer.alloc(0), complete: false }));
  });
}

describe('the streaming fill: metrics', () => {
  let dir: string;
  let origin: Server;
  let fill: FillServer;
  let url: string;
  /** What the origin answers, by path. */
  const bodies = new Map<string, { body: Buffer; stored: boolean; release?: Promise<void> }>();

  /** The value of one series of the fill's registry (0 when it has none). */
  async function value(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = await fill.registry.getSingleMetric(name)!.get();
    const found = metric.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
    return found?.value ?? 0;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fill-metrics-'));
    origin = createServer((req: IncomingMessage, res: ServerResponse) => {
      const entry = bodies.get(req.url ?? '');
      if (!entry) return void res.writeHead(404).end();
      // Distribution: Cache-Control on a blob served from its storage, none on one it fetches
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(entry.body.length),
        ...(entry.stored ? { 'cache-control': 'max-age=31536000' } : {}),
      });
      res.write(entry.body.subarray(0, entry.body.length / 2));
      void (entry.release ?? Promise.resolve()).then(() => res.end(entry.body.subarray(entry.body.length / 2)));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const port = (origin.address() as { port: number }).port;
    fill = new FillServer({ distribution: `http://127.0.0.1:${port}`, spoolDir: join(dir, 'spool') });
    url = `http://127.0.0.1:${await fill.listen(0, '127.0.0.1')}`;
  });
  afterAll(async () => {
    await fill?.close();
    origin?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it(`${READERS} concurrent readers of one cold blob: 1 miss, ${READERS - 1} coalesced, ${READERS} x its size sent, its size fetched once`, async () => {
    const body = randomBytes(SIZE);
    const path = `/v2/lib/app/blobs/sha256:${digestHex(body)}`;
    let release!: () => void;
    bodies.set(path, { body, stored: false, release: new Promise<void>((r) => (release = r)) });
    const reads = Array.from({ length: READERS }, () => fetchBody(`${url}${path}`));
    // while the transfer waits for its second half: one transfer, READERS - 1 waiting on it
    await waitFor('every reader on the transfer', async () =>
      (await value('registry_mirror_fill_waiters')) === READERS - 1 ? true : undefined,
    );
    expect(await value('registry_mirror_fill_transfers_in_flight')).toBe(1);
    expect(await value('registry_mirror_fill_clients')).toBe(READERS);
    release();
    for (const r of await Promise.all(reads)) expect(r).toMatchObject({ status: 200, complete: true });

    await waitFor('every reader counted', async () =>
      (await value('registry_mirror_fill_requests_total', { result: 'coalesced' })) === READERS - 1 ? true : undefined,
    );
    expect(await value('registry_mirror_fill_requests_total', { result: 'miss' })).toBe(1);
    expect(await value('registry_mirror_fill_requests_total', { result: 'hit' })).toBe(0);
    expect(await value('registry_mirror_fill_sent_bytes_total')).toBe(READERS * SIZE);
    expect(await value('registry_mirror_fill_fetched_bytes_total', { source: 'distribution' })).toBe(SIZE);
    expect(await value('registry_mirror_fill_transfers_total', { source: 'distribution' })).toBe(1);
    expect(await value('registry_mirror_fill_transfers_in_flight')).toBe(0);
    expect(await value('registry_mirror_fill_waiters')).toBe(0);
  });

  it("a blob from Distribution's storage is a hit; a body that is not its digest a verification failure and a fallback for no one", async () => {
    const stored = randomBytes(4096);
    const storedPath = `/v2/lib/app/blobs/sha256:${digestHex(stored)}`;
    bodies.set(storedPath, { body: stored, stored: true });
    expect(await fetchBody(`${url}${storedPath}`)).toMatchObject({ status: 200, complete: true });
    await waitFor('the hit', async () =>
      (await value('registry_mirror_fill_requests_total', { result: 'hit' })) === 1 ? true : undefined,
    );

    const wrongPath = `/v2/lib/app/blobs/sha256:${digestHex(randomBytes(16))}`;
    bodies.set(wrongPath, { body: randomBytes(4096), stored: false });
    expect((await fetchBody(`${url}${wrongPath}`)).complete).toBe(false);
    await waitFor('the verification failure', async () =>
      (await value('registry_mirror_fill_verification_failures_total')) === 1 ? true : undefined,
    );
    // a digest the origin does not have: an error the front turns into the node's fallback
    expect((await fetchBody(`${url}/v2/lib/app/blobs/sha256:${'0'.repeat(64)}`)).status).toBe(404);
    await waitFor('the fallback', async () =>
      (await value('registry_mirror_fill_requests_total', { result: 'fallback' })) === 1 ? true : undefined,
    );
    // the exposition: every result from the start, no digest in any label
    const text = await fill.registry.metrics();
    expect(text).toContain('registry_mirror_fill_requests_total{result="peer"} 0');
    expect(text).not.toMatch(/sha256/);
  });
});
