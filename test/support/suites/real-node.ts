/**
 * A real node with an upstream as a vitest file-scoped fixture: the one-node cluster of
 * components/node.ts with every stand-in image imported, Distribution as the anonymous upstream
 * registry on the node (reached by `upstreamHost`, default `upstream.test`), clients for its API
 * server and, when asked, the RegistryMirror CRD installed. Booted by the first test or hook that
 * asks for `realNode` (ask in `test.beforeAll` so the boot counts against the hook timeout, not a
 * test's), stopped after the file's last test. The test also has `synthesize` (suites/synthesized.ts).
 *
 *     const unavailable = await nodeClusterUnavailable();
 *     const test = realNodeTest({ crd: true });
 *     describe.skipIf(unavailable !== undefined)('on a real node', () => {
 *       test('a Pod pulls an upstream-only image', async ({ realNode }) => {
 *         const image = await realNode.newImage('team/app');
 *         await runPod(realNode.k.core, 'app', image.refByTag(realNode.upstream.host));
 *       });
 *     });
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { type NodeCluster } from '../components/node.js';
import type { TestImage } from '../fixtures/images.js';
import { runnableTestImage } from '../fixtures/stand-in-images.js';
import { type Clients, clients, installCrd } from '../kube/cluster.js';
import {
  type NodeClients,
  nodeClients,
  type NodeUpstream,
  startNodeUpstream,
  startStandInNode,
} from '../kube/node-workloads.js';
import { synthTest } from './synthesized.js';

export interface RealNodeOptions {
  /** @default 'upstream.test' */
  readonly upstreamHost?: string;
  /** PersistentVolumes made ready for claims. @default the node's own default */
  readonly persistentVolumes?: number;
  /** Install the RegistryMirror CRD. @default false (dist/ applied with kustomize brings its own) */
  readonly crd?: boolean;
}

export interface RealNode {
  readonly node: NodeCluster;
  /** Clients of its API server, as the node workload helpers take them. */
  readonly k: NodeClients;
  /** The same API server, as the RegistryMirror helpers take it. */
  readonly c: Clients;
  readonly upstream: NodeUpstream;
  /**
   * A new image on the upstream only: a busybox layer and one of its own, as
   * `<repository>:1.0`; each call makes a new one (`<prefix><n>` when `repository` ends in `/`).
   */
  newImage(repository: string): Promise<TestImage>;
  /** The node's containerd hosts.toml for the upstream, undefined when none is written. */
  hostsToml(): Promise<string | undefined>;
}

async function boot(options: RealNodeOptions, onCleanup: (f: () => Promise<void>) => void): Promise<RealNode> {
  const host = options.upstreamHost ?? 'upstream.test';
  const node = await startStandInNode({
    hostNames: [host],
    ...(options.persistentVolumes !== undefined ? { persistentVolumes: options.persistentVolumes } : {}),
  });
  onCleanup(() => node.stop());
  const c = clients(node.kubeconfigPath);
  const upstream = await startNodeUpstream(node, host);
  if (options.crd) await installCrd(c);
  let made = 0;
  return {
    node,
    k: nodeClients(node),
    c,
    upstream,
    async newImage(repository) {
      const image = await runnableTestImage({
        repository: repository.endsWith('/') ? `${repository}app${++made}` : repository,
        tag: '1.0',
      });
      await upstream.client.push(image);
      return image;
    },
    hostsToml: () => readFile(join(node.certsDir, host, 'hosts.toml'), 'utf8').catch(() => undefined),
  };
}

/** A `test` with the file-scoped fixtures `realNode` (see the top of this file) and `synthesize`. */
export function realNodeTest(options: RealNodeOptions = {}) {
  // vitest reads a fixture's dependencies from its first parameter: it must be a destructuring pattern
  return synthTest().extend('realNode', { scope: 'file' }, async ({}, { onCleanup }) => boot(options, onCleanup));
}
