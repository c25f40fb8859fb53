/**
 * A controller environment as a vitest file-scoped fixture: the suite's real kube-apiserver (or
 * MIRROR_SYNTH_TEST_KUBECONFIG's cluster), the RegistryMirror CRD installed, a namespace of the
 * file's own with its node agent namespace, and a controller running in-process on it. Set up
 * on the first test (or hook) that asks for `env`, torn down once after the file's last test:
 * controllers stopped, the file's mirrors and namespaces deleted.
 *
 *     const test = controllerTest({ prefix: 'nc', simulateReady: true });
 *     test('goes Ready', async ({ env }) => {
 *       const name = await env.mirror(env.name('quay'), { upstreamUrl: 'quay.io' });
 *       await waitForReady(env.c, name);
 *     });
 */
import { randomBytes } from 'node:crypto';

import { inject, test as base } from 'vitest';

import {
  type RunningController,
  startController,
  type StartControllerOptions,
} from '../../../src/controller/controller.js';
import {
  type Clients,
  clients,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  installCrd,
  LogCapture,
  nodeAgentNamespaceOf,
} from '../kube/cluster.js';
import { simulateReadyWorkloads } from '../kube/workload-status.js';
import { waitFor } from '../primitives/wait.js';

/** What a file's controller is started with, beside its cluster and namespace. */
export type ControllerSettings = Partial<Omit<StartControllerOptions, 'kubeConfig' | 'namespace'>>;

export interface ControllerEnvOptions {
  /** The start of the file's namespace, `<prefix>-<6 hex digits>`; also names its Lease. */
  readonly prefix: string;
  /**
   * Patch the mirrors' StatefulSets and DaemonSets to report ready Pods, as a kubelet would (the
   * test control plane has none).
   * @default false
   */
  readonly simulateReady?: boolean;
  /**
   * The file's controller: its options over the defaults (`secondsBetweenStreams: 1`, a free
   * metrics port, no leader election, `logLevel: 'warn'`, logs into `env.logs`), or `false` for
   * none: the file starts its own with `env.start()`.
   * @default {}
   */
  readonly controller?: ControllerSettings | false;
  /**
   * The namespace exists already (`kube-extra` in the takeover tests): it is used, not created
   * nor deleted.
   */
  readonly namespace?: string;
}

export interface ControllerEnv {
  readonly c: Clients;
  /** The file's output namespace; the node agent's is `<namespace>-node`. */
  readonly namespace: string;
  /** The random part of the namespace, to give the file's objects names of their own. */
  readonly suffix: string;
  /** Every log line of the controllers started with `logDestination` left to the default. */
  readonly logs: LogCapture;
  /** The file's controller; throws when `controller: false`. */
  readonly controller: RunningController;
  /** `<base>-<suffix>`. */
  name(base: string): string;
  /** Create a RegistryMirror of exactly that name, deleted after the file. */
  mirror(name: string, spec: Record<string, unknown>, labels?: Record<string, string>): Promise<string>;
  /** Start another controller on the namespace (defaults as above, then `settings`), stopped after the file. */
  start(settings?: ControllerSettings): Promise<RunningController>;
  /** Stop a controller `start` returned (the file's own included) before the file ends. */
  stop(ctl: RunningController): Promise<void>;
  /** Until the file's controller has nothing queued or running. */
  idle(): Promise<void>;
}

async function setUp(options: ControllerEnvOptions, cleanups: Array<() => Promise<void>>): Promise<ControllerEnv> {
  const c = clients(inject('kubeconfig'));
  const suffix = randomBytes(3).toString('hex');
  const namespace = options.namespace ?? `${options.prefix}-${suffix}`;
  const logs = new LogCapture();
  const created = new Set<string>();
  const running: RunningController[] = [];

  await installCrd(c);
  if (options.namespace === undefined) {
    await createMirrorNamespaces(c, namespace);
    cleanups.push(async () => {
      await c.core.deleteNamespace({ name: namespace }).catch(() => undefined);
      await c.core.deleteNamespace({ name: nodeAgentNamespaceOf(namespace) }).catch(() => undefined);
    });
  }
  cleanups.push(async () => {
    for (const n of created) await deleteMirror(c, n);
  });
  cleanups.push(async () => {
    for (const ctl of running.splice(0)) await ctl.stop();
  });
  if (options.simulateReady) {
    const stopSimulating = simulateReadyWorkloads(c.kc, namespace);
    cleanups.push(stopSimulating);
  }

  const start = async (settings: ControllerSettings = {}): Promise<RunningController> => {
    const ctl = await startController({
      kubeConfig: c.kc,
      namespace,
      secondsBetweenStreams: 1,
      metricsPort: 0,
      leaderElection: false,
      logLevel: 'warn',
      logDestination: logs,
      ...settings,
    });
    running.push(ctl);
    await ctl.running;
    return ctl;
  };
  const own = options.controller === false ? undefined : await start(options.controller);

  return {
    c,
    namespace,
    suffix,
    logs,
    get controller(): RunningController {
      if (!own) throw new Error(`controllerTest({ prefix: '${options.prefix}' }) starts no controller`);
      return own;
    },
    name: (b) => `${b}-${suffix}`,
    async mirror(name, spec, labels = {}) {
      created.add(name);
      await createMirror(c, name, spec, labels);
      return name;
    },
    start,
    async stop(ctl) {
      const i = running.indexOf(ctl);
      if (i >= 0) running.splice(i, 1);
      await ctl.stop();
    },
    async idle() {
      await waitFor('the controller to be idle', () => Promise.resolve(own?.idle() ?? true));
    },
  };
}

/** A `test` whose file-scoped fixture `env` is a controller environment (see the top of this file). */
export function controllerTest(options: ControllerEnvOptions) {
  // vitest reads a fixture's dependencies from its first parameter: it must be a destructuring pattern
  return base.extend('env', { scope: 'file' }, async ({}, { onCleanup }) => {
    // Torn down in the reverse order of set-up: the simulation and controllers first, then mirrors, namespaces.
    const cleanups: Array<() => Promise<void>> = [];
    onCleanup(async () => {
      for (const f of cleanups.reverse()) await f();
    });
    return setUp(options, cleanups);
  });
}
