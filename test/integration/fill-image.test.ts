// The controller's fill image against a real kube-apiserver: a mirror with `spec.fill: streaming`
// runs its fill from the image the controller is given (controller-manifests gives it the
// controller's own as FILL_IMAGE), whatever the mirror's spec.imageRegistry; without one the
// mirror stalls with NoFillImage instead of running a default image. spec.fill: whole mirrors
// reconcile either way.
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { type RunningController, startController } from '../../src/controller/controller.js';
import {
  children,
  clients,
  condition,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  getMirror,
  installCrd,
  LogCapture,
} from '../support/kube/cluster.js';
import { waitFor } from '../support/primitives/wait.js';

const c = clients(inject('kubeconfig'));
const suffix = randomBytes(3).toString('hex');
const namespace = `fi-${suffix}`;
const streaming = `stream-${suffix}`;
const whole = `whole-${suffix}`;
const IMAGE = `registry.example.com/platform/mirror-synth:0.1.0@sha256:${'c'.repeat(64)}`;

async function run(fillImage: string | undefined): Promise<RunningController> {
  const ctl = await startController({
    kubeConfig: c.kc,
    namespace,
    ...(fillImage ? { fillImage } : {}),
    secondsBetweenStreams: 1,
    metricsPort: 0,
    leaderElection: true,
    leaseName: `mirror-synth-${suffix}`,
    resyncSeconds: 3600,
    logLevel: 'warn',
    logDestination: new LogCapture(),
  });
  await ctl.running;
  return ctl;
}

let ctl: RunningController | undefined;

beforeAll(async () => {
  await installCrd(c);
  await createMirrorNamespaces(c, namespace);
});

afterAll(async () => {
  await ctl?.stop();
  await deleteMirror(c, streaming);
  await deleteMirror(c, whole);
  await c.core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('the fill image in controller mode', () => {
  it('without a fill image, a streaming mirror stalls with NoFillImage and gets no children; a whole one reconciles', async () => {
    ctl = await run(undefined);
    await createMirror(c, streaming, {
      upstreamUrl: `quay-${suffix}.example`,
      fill: 'streaming',
      imageRegistry: 'harbor.example.com/hub',
    });
    await createMirror(c, whole, { upstreamUrl: `docker-${suffix}.example` });
    const stalled = await waitFor(`${streaming} to stall`, async () => {
      const m = await getMirror(c, streaming);
      return condition(m, 'Stalled')?.status === 'True' ? condition(m, 'Stalled') : undefined;
    });
    expect(stalled).toMatchObject({ reason: 'NoFillImage' });
    expect(stalled.message).toContain('spec.fill is streaming');
    expect(stalled.message).toContain("the controller's --fill-image or FILL_IMAGE");
    expect(stalled.message).toContain('controller-manifests');
    expect(stalled.message).not.toContain('cdk8s.yaml');
    expect([...(await children(c, namespace, streaming)).keys()]).toEqual([]);
    await waitFor(`the StatefulSet of ${whole}`, async () =>
      (await children(c, namespace, whole)).get(`StatefulSet/registry-mirror-${whole}`),
    );
    await ctl.stop();
    ctl = undefined;
  });

  it("with one, the streaming mirror's fill runs it as given, not moved by spec.imageRegistry", async () => {
    ctl = await run(IMAGE);
    const sts = (await waitFor(`the StatefulSet of ${streaming}`, async () =>
      (await children(c, namespace, streaming)).get(`StatefulSet/registry-mirror-${streaming}`),
    )) as unknown as { spec: { template: { spec: { containers: { name: string; image: string }[] } } } };
    const images = Object.fromEntries(sts.spec.template.spec.containers.map((x) => [x.name, x.image]));
    expect(images.fill).toBe(IMAGE);
    expect(images.registry).toBe('harbor.example.com/hub/library/registry:3.1.2');
    await waitFor(`${streaming} to be no longer stalled`, async () => {
      const m = await getMirror(c, streaming);
      return condition(m, 'Stalled')?.status === 'False' ? m : undefined;
    });
  });
});
