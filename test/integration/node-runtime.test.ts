// The controller's --node-runtime against a real kube-apiserver: the DaemonSet it applies mounts
// the runtime's one host directory, and the agent is told which runtime it configures.
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { type RunningController, startController } from '../../src/controller/controller.js';
import {
  children,
  clients,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  installCrd,
  LogCapture,
} from '../support/kube/cluster.js';
import { waitFor } from '../support/primitives/wait.js';

const c = clients(inject('kubeconfig'));
const suffix = randomBytes(3).toString('hex');
const namespace = `rt-${suffix}`;
const mirrorName = `crio-${suffix}`;
let ctl: RunningController;

beforeAll(async () => {
  await installCrd(c);
  await createMirrorNamespaces(c, namespace);
  ctl = await startController({
    kubeConfig: c.kc,
    namespace,
    nodeRuntime: 'cri-o',
    secondsBetweenStreams: 1,
    metricsPort: 0,
    leaderElection: true,
    leaseName: `mirror-synth-${suffix}`,
    resyncSeconds: 3600,
    logLevel: 'warn',
    logDestination: new LogCapture(),
  });
  await ctl.running;
});

afterAll(async () => {
  await ctl?.stop();
  await deleteMirror(c, mirrorName);
  await c.core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('controller with --node-runtime cri-o', () => {
  it('applies a node agent that mounts /etc/containers/registries.conf.d and nothing else of the host', async () => {
    await createMirror(c, mirrorName, { upstreamUrl: 'quay.io', masqueradeUrl: `quay-${suffix}.example` });
    const ds = await waitFor('the DaemonSet', async () =>
      (await children(c, namespace, mirrorName)).get(`DaemonSet/registry-mirror-${mirrorName}`),
    );
    const pod = (ds as unknown as { spec: { template: { spec: Record<string, any> } } }).spec.template.spec;
    expect(
      pod.volumes.filter((v: { hostPath?: unknown }) => v.hostPath).map((v: { hostPath: unknown }) => v.hostPath),
    ).toEqual([{ path: '/etc/containers/registries.conf.d', type: 'DirectoryOrCreate' }]);
    const env = Object.fromEntries(
      pod.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]),
    );
    expect(env).toMatchObject({ NODE_RUNTIME: 'cri-o', CONFIG_DIR: '/host/etc/containers/registries.conf.d' });
    expect(pod.containers[0].securityContext).toMatchObject({ privileged: false, capabilities: { drop: ['ALL'] } });
  });
});
