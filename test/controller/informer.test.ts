// A watch on a connection that goes quiet (headers, then nothing; or nothing at all) is aborted
// after the idle timeout and restarted, against a loopback server that holds it open.
import { type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CONTROLLER_DEFAULTS } from '../../src/controller/config.js';
import { SupervisedInformer, WatchIdleError } from '../../src/controller/informer.js';
import { type HoldingServer, startHoldingServer } from '../support/faults/holding-server.js';

let server: HoldingServer;
const watches: string[] = [];
let kc: KubeConfig;

beforeAll(async () => {
  server = await startHoldingServer((req, res, hold) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('watch') !== 'true') return void res.writeHead(404).end();
    watches.push(url.pathname);
    if (url.pathname.endsWith('/silent')) {
      hold(res); // not even headers
    } else if (url.pathname.endsWith('/chatty')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      const bookmark = () =>
        res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '7' } } })}\n`);
      const t = setInterval(bookmark, BOOKMARK_MS);
      res.on('close', () => clearInterval(t));
      hold(res);
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }); // then nothing
      res.flushHeaders();
      hold(res);
    }
  });
  kc = server.kc;
});

afterAll(() => server.close());

/** The chatty path's bookmark interval: far below CHATTY_IDLE_MS, so a loaded event loop does not fire the idle timer first. */
const BOOKMARK_MS = 100;
/** The quiet paths' idle timeout: nothing arrives there, so no ratio to keep. */
const IDLE_MS = 400;
/** The chatty path's idle timeout, 20 bookmark intervals. */
const CHATTY_IDLE_MS = 2_000;

function informer(path: string, errors: unknown[], watchIdleMs = IDLE_MS): SupervisedInformer<KubernetesObject> {
  return new SupervisedInformer<KubernetesObject>({
    name: 'things',
    kubeConfig: kc,
    path,
    list: () => Promise.resolve({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '5' }, items: [] }),
    restartDelayMs: () => 50,
    logger: pino({ level: 'silent' }),
    onChange: () => undefined,
    onError: (err) => errors.push(err),
    watchIdleMs,
    watchTimeoutSeconds: CONTROLLER_DEFAULTS.watchTimeoutSeconds,
  });
}

describe('watch idle timeout', () => {
  it.each([
    ['headers then silence', '/api/v1/quiet'],
    ['no answer at all', '/api/v1/silent'],
  ])('aborts a watch that receives nothing (%s) and starts it again', async (_what, path) => {
    const errors: unknown[] = [];
    const inf = informer(path, errors);
    const started = Date.now();
    void inf.start();
    await inf.whenSynced();
    await expect.poll(() => errors.length, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
    await inf.stop();
    expect(errors[0]).toBeInstanceOf(WatchIdleError);
    expect((errors[0] as Error).message).toBe(`watch of ${path} received nothing for 0.4s (not even a bookmark)`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2 * IDLE_MS);
    expect(watches.filter((p) => p === path).length).toBeGreaterThanOrEqual(2); // restarted, on a new request
  });

  it('keeps a watch that receives bookmarks', async () => {
    const errors: unknown[] = [];
    const inf = informer('/api/v1/chatty', errors, CHATTY_IDLE_MS);
    void inf.start();
    await inf.whenSynced();
    // two and a half idle timeouts: a watch the bookmarks did not keep alive would be aborted twice
    await new Promise((r) => setTimeout(r, 2.5 * CHATTY_IDLE_MS));
    await inf.stop();
    expect(errors).toEqual([]);
    expect(watches.filter((p) => p === '/api/v1/chatty')).toHaveLength(1);
  });
});
