// Request deadlines against a loopback HTTP server that accepts requests and never answers
// (or answers the headers and then stalls the body): the hang a black-holed connection makes.
import { CoreV1Api, type KubeConfig, KubernetesObjectApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RequestFence, RequestFencedError, RequestTimeoutError, withDeadlines } from '../../src/controller/deadline.js';
import { createMetrics } from '../../src/controller/metrics.js';
import { type HoldingServer, startHoldingServer } from '../support/faults/holding-server.js';
import { waitFor } from '../support/primitives/wait.js';

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
    } else if (req.url?.startsWith('/api/v1/namespaces/missing')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
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
    const fence = new RequestFence();
    const core = withDeadlines(kc, { timeoutMs: 10_000, fence }).makeApiClient(CoreV1Api);
    const inFlight = core.readNamespace({ name: 'hung' }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    fence.abort(new Error('lost the Lease'));
    const err = await inFlight;
    expect(err).toBeInstanceOf(RequestFencedError);
    expect((err as Error).message).toBe('GET /api/v1/namespaces/hung: aborted: lost the Lease');
    const later = await core.readNamespace({ name: 'quick' }).catch((e: unknown) => e);
    expect(later).toBeInstanceOf(RequestFencedError);
  });

  it('holds each request only while it is in flight: back to none after many requests, however they end', async () => {
    const fence = new RequestFence();
    // Two clients through one fence: a deadline no answer comes near (on a loaded machine too),
    // and one that cuts the requests the server never finishes.
    const patient = withDeadlines(kc, { timeoutMs: 10_000, fence }).makeApiClient(CoreV1Api);
    const hasty = withDeadlines(kc, { timeoutMs: 300, fence }).makeApiClient(CoreV1Api);
    let peak = 0;
    const sample = setInterval(() => (peak = Math.max(peak, fence.inFlight)), 5);
    const outcomes: string[] = [];
    const outcome = (p: Promise<unknown>) =>
      p.then(
        () => outcomes.push('answered'),
        (e: unknown) => outcomes.push(e instanceof RequestTimeoutError ? 'timed out' : 'failed'),
      );
    // Three rounds of 40 at once: answered, 404s, never answered (cut at the deadline), bodies that stall.
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => {
          const name = ['quick', 'missing', 'hung', 'slow-body'][i % 4];
          return outcome((i % 4 < 2 ? patient : hasty).readNamespace({ name }));
        }),
      );
      expect(fence.inFlight).toBe(0);
    }
    clearInterval(sample);
    expect(peak).toBeGreaterThan(10);
    expect(outcomes.filter((o) => o === 'answered')).toHaveLength(30);
    expect(outcomes.filter((o) => o === 'failed')).toHaveLength(30);
    expect(outcomes.filter((o) => o === 'timed out')).toHaveLength(60);

    // Aborted by the fence: every one of 60 in flight, and the fence holds none afterwards.
    const hung = Array.from({ length: 60 }, () => patient.readNamespace({ name: 'hung' }).catch((e: unknown) => e));
    await waitFor('60 requests in flight', () => (fence.inFlight === 60 ? true : undefined), 10_000, 10);
    fence.abort(new Error('lost the Lease'));
    expect(fence.inFlight).toBe(0);
    for (const err of await Promise.all(hung)) expect(err).toBeInstanceOf(RequestFencedError);
    // Refused before being sent: never held.
    expect(await patient.readNamespace({ name: 'quick' }).catch((e: unknown) => e)).toBeInstanceOf(RequestFencedError);
    expect(fence.inFlight).toBe(0);
  });

  it('sends many requests at once through one fence without a MaxListenersExceededWarning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const fence = new RequestFence();
      const hasty = withDeadlines(kc, { timeoutMs: 500, fence }).makeApiClient(CoreV1Api);
      const patient = withDeadlines(kc, { timeoutMs: 10_000, fence }).makeApiClient(CoreV1Api);
      // 50 at once, ended by their deadline; then 50 more ended by the fence.
      await Promise.all(Array.from({ length: 50 }, () => hasty.readNamespace({ name: 'hung' }).catch(() => undefined)));
      const held = Array.from({ length: 50 }, () => patient.readNamespace({ name: 'hung' }).catch(() => undefined));
      await waitFor('50 requests in flight', () => (fence.inFlight === 50 ? true : undefined), 10_000, 10);
      fence.abort(new Error('lost the Lease'));
      await Promise.all(held);
      await new Promise((r) => setImmediate(r)); // process.emitWarning emits on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message)).toEqual([]);
  });

  it('shows the requests in flight on /metrics (mirror_synth_api_requests_in_flight)', async () => {
    const fence = new RequestFence();
    const metrics = createMetrics({ defaultMetrics: false, apiRequestsInFlight: () => fence.inFlight });
    const gauge = async () =>
      /^mirror_synth_api_requests_in_flight (\d+)$/m.exec(await metrics.registry.metrics())?.[1];
    expect(await gauge()).toBe('0');
    const core = withDeadlines(kc, { timeoutMs: 10_000, fence }).makeApiClient(CoreV1Api);
    const held = Array.from({ length: 12 }, () => core.readNamespace({ name: 'hung' }).catch(() => undefined));
    await waitFor('12 requests in flight', () => (fence.inFlight === 12 ? true : undefined), 10_000, 10);
    expect(await gauge()).toBe('12');
    fence.abort(new Error('stop'));
    await Promise.all(held);
    expect(await gauge()).toBe('0');
  });
});
