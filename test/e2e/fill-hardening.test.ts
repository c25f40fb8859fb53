// Issue 25, against the real components: the synthesized cache pod (Debian's nginx with the
// ConfigMap's nginx.conf, mirror-synth fill as its container runs it, Distribution behind them)
// before a real upstream (Distribution, TLS, htpasswd). What nodes never send (other methods,
// request bodies) reaches nothing behind the front, nor behind the fill.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { synthesizeMirror } from '../../src/index.js';
import { buildImage, RegistryClient, type TestImage } from '../support/images.js';
import { exchangeRaw } from '../support/raw-http.js';
import {
  type RegistryProcess,
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
  waitFor,
} from '../support/registry.js';

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

/** TCP connections established to 127.0.0.1:`port`, counted at the connecting end (`ss`). */
async function connectionsTo(port: number): Promise<number> {
  const { stdout } = await promisify(execFile)('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`]);
  return stdout.split('\n').filter(Boolean).length;
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

  function startMirror(sub: string, fill: 'whole' | 'streaming'): Promise<SynthesizedMirror> {
    return startSynthesizedMirror({
      binary: inject('registryBinary'),
      dir: join(dir, sub),
      name: NAME,
      objects: synthesizeMirror(
        { name: NAME, spec: { upstreamUrl: upstream.host, credentialsSecret: SECRET, fill }, source: 'fill-hardening' },
        { namespace: 'test' },
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
