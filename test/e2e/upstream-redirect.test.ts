// An upstream's redirect, followed wherever it points: why the cache pods' NetworkPolicy limits
// egress (README "Who may pull through a mirror"). The synthesized cache pod (front and
// Distribution, see test/support/components/registry.ts SynthesizedMirror) pulls through from an upstream that
// answers every blob with a redirect to another address, a loopback server standing for the cloud
// metadata endpoint (169.254.169.254). Nothing in the mirror refuses it; no CNI enforces the
// egress policy here, so this shows what only that policy stops.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { synthesizeMirror } from '../../src/index.js';
import { startSynthesizedMirror, type SynthesizedMirror } from '../support/components/registry.js';
import { makeTestCA, type TestCA } from '../support/primitives/tls.js';
import { waitFor } from '../support/primitives/wait.js';

const NAME = 'redirect';
const METADATA_PATH = '/latest/meta-data/iam/security-credentials/node-role';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe("an upstream's redirect", () => {
  let dir: string;
  let ca: TestCA;
  let metadata: Server;
  let upstream: Server;
  let upstreamPort: number;
  let mirror: SynthesizedMirror;
  /** What the stand-in metadata endpoint was asked. */
  const asked: { method: string; url: string }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ms-redirect-'));
    ca = await makeTestCA(join(dir, 'tls'));
    metadata = createHttpServer((req: IncomingMessage, res) => {
      asked.push({ method: req.method ?? '', url: req.url ?? '' });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"AccessKeyId":"stand-in"}');
    });
    const metadataPort = await listen(metadata);
    // The upstream: /v2/ answers, every blob is a redirect (as Docker Hub's are, to its CDN).
    upstream = createHttpsServer(
      { cert: await readFile(ca.cert), key: await readFile(ca.key) },
      (req: IncomingMessage, res) => {
        if (req.url === '/v2/') res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
        else if (/^\/v2\/.+\/blobs\/sha256:[0-9a-f]{64}$/.test(req.url ?? ''))
          res.writeHead(307, { Location: `http://127.0.0.1:${metadataPort}${METADATA_PATH}` }).end();
        else res.writeHead(404).end();
      },
    );
    upstreamPort = await listen(upstream);
    mirror = await startSynthesizedMirror({
      binary: inject('registryBinary'),
      dir: join(dir, 'mirror'),
      name: NAME,
      objects: synthesizeMirror(
        {
          name: NAME,
          spec: { upstreamUrl: `127.0.0.1:${upstreamPort}` },
          source: 'test/e2e/upstream-redirect.test.ts',
        },
        { namespace: 'test' },
      ),
      upstreamCaFile: ca.caCert,
    });
  });

  afterAll(async () => {
    await mirror?.dispose();
    upstream?.close();
    metadata?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('is followed by the cache to any address, with the path the upstream chose', async () => {
    const digest = `sha256:${createHash('sha256').update('a layer').digest('hex')}`;
    // a node's pull of a blob the cache does not have yet
    const res = await fetch(`${mirror.url}/v2/library/app/blobs/${digest}`);
    await res.arrayBuffer();
    const seen = await waitFor('the cache to ask the redirect target', () =>
      asked.some((a) => a.url === METADATA_PATH) ? asked : undefined,
    );
    expect(seen.map((a) => a.url)).toContain(METADATA_PATH);
  });
});
