// Request deadlines against a loopback HTTP server that accepts requests and never answers
// (or answers the headers and then stalls the body): the hang a black-holed connection makes.
import { CoreV1Api, type KubeConfig, KubernetesObjectApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RequestFencedError, RequestTimeoutError, withDeadlines } from '../../src/controller/deadline.js';
import { type HoldingServer, startHoldingServer } from '../support/holding-server.js';

let server: HoldingServer;
let kc: KubeConfig;
/** The URL of every request the server received, in order. */
const received: string[] = [];

beforeAll(async () => {
  server = await startHoldingServer((req, res, hold) => {
    received.push(req.url ?? '');
    if (req.url?.startsWith('/api/v1/namespaces/quick')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'quick' } }));
    } else if (req.url?.startsWith('/api/v1/namespaces/slow-body')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"apiVersion":"v1",');
      hold(res);
    } else {
      hold(res); // never answered
    }
  });
  kc = server.kc;
});

afterAll(() => server.close());

describe('withDeadlines', () => {
  it('answers as before when the server answers', async () => {
    const core = withDeadlines(kc, { timeoutMs: 2_000 }).makeApiClient(CoreV1Api);
    expect((await core.readNamespace({ name: 'quick' })).metadata?.name).toBe('quick');
  });

  it('fails a request the server never answers after its timeout, naming the call', async () => {
    const core = withDeadlines(kc, { timeoutMs: 200 }).makeApiClient(CoreV1Api);
    const started = Date.now();
    const err = await core.readNamespace({ name: 'hung' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect((err as Error).message).toBe('GET /api/v1/namespaces/hung: no answer within 0.2s');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('counts a body that stalls after the headers against the same deadline', async () => {
    const core = withDeadlines(kc, { timeoutMs: 300 }).makeApiClient(CoreV1Api);
    const err = await core.readNamespace({ name: 'slow-body' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect((err as RequestTimeoutError).call).toBe('GET /api/v1/namespaces/slow-body');
  });

  it('reaches KubernetesObjectApi too (server-side apply, reads, deletes)', async () => {
    const objects = KubernetesObjectApi.makeApiClient(withDeadlines(kc, { timeoutMs: 200 }));
    const err = await objects
      .read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'ns' } })
      .catch((e: unknown) => e);
    // Its first request is discovery (which resource a kind is): that one hangs here.
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect((err as Error).message).toBe(
      'Failed to fetch resource metadata for v1/ConfigMap: GET /api/v1: no answer within 0.2s',
    );
  });

  it('reads a shrinking deadline when each request is sent, and fails at once when none is left', async () => {
    let left = 150;
    const core = withDeadlines(kc, { timeoutMs: () => left }).makeApiClient(CoreV1Api);
    expect(await core.readNamespace({ name: 'hung' }).catch((e: unknown) => (e as RequestTimeoutError).timeoutMs)).toBe(
      150,
    );
    left = 0;
    const err = await core.readNamespace({ name: 'quick-none-left' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect((err as RequestTimeoutError).timeoutMs).toBe(0);
    // "at once": the request was never sent. A request answered after it, on the same loopback
    // server, arrives after it would have.
    left = 2_000;
    expect((await core.readNamespace({ name: 'quick-after' })).metadata?.name).toBe('quick');
    expect(received.filter((u) => u.includes('/quick-'))).toEqual(['/api/v1/namespaces/quick-after']);
  });

  it('aborts requests in flight, and refuses new ones, once the fence fires', async () => {
    const fence = new AbortController();
    const core = withDeadlines(kc, { timeoutMs: 10_000, fence: fence.signal }).makeApiClient(CoreV1Api);
    const inFlight = core.readNamespace({ name: 'hung' }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    fence.abort(new Error('lost the Lease'));
    const err = await inFlight;
    expect(err).toBeInstanceOf(RequestFencedError);
    expect((err as Error).message).toBe('GET /api/v1/namespaces/hung: aborted: lost the Lease');
    const later = await core.readNamespace({ name: 'quick' }).catch((e: unknown) => e);
    expect(later).toBeInstanceOf(RequestFencedError);
  });
});
