// The test control plane runs no kubelet (and, in the shared one, no StatefulSet or DaemonSet
// controller), so nothing ever reports a workload's pods ready. This helper stands in for them:
// it patches the status of the StatefulSets and DaemonSets in a namespace so they report every
// desired pod ready for their current generation, as the workload controllers would once the
// kubelet marked the pods Ready. Tests that use it say so.
//
// Readiness as the real kubelet and controllers report it is the real node's (test/support/components/node.ts:
// real-node*.test.ts), which is where every claim about Ready, probes and crash loops is made.
// What still uses this, and why a real node does not do their job:
// - controller.test.ts and name-collision.test.ts: Ready is only the step after which they check
//   what was applied, pruned or refused, for many mirrors on the shared control plane; a real
//   cache pod per mirror would add its start to each case and tell nothing more.
// - controller-deadline.test.ts: Ready is the step before it black-holes the API server's
//   connection; what it checks (the leader's exit, liveness) happens with no pod involved.
// - controller-recovery.test.ts: it stops and restarts its own API server mid-test, which a node's
//   kubelet and controllers would not survive as a cluster does.
// - controller-status.test.ts (markStatefulSetReady): a status flap with nothing else changed, a
//   state no real controller writes on demand.
// - monitoring.test.ts: a DaemonSet desired on two nodes with one missing its agent, a state a
//   single real node cannot be put into.
// - takeover.test.ts (with legacy-mirror.ts): a stand-in kubelet of its own that holds the new node
//   agent un-Ready on demand; the real-node takeover is test/e2e/real-node-takeover.test.ts.
import { AppsV1Api, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

/** Status a StatefulSet reports when all `replicas` pods of generation `generation` are ready. */
export function readyStatefulSetStatus(generation: number, replicas: number): Record<string, unknown> {
  return {
    observedGeneration: generation,
    replicas,
    readyReplicas: replicas,
    availableReplicas: replicas,
    updatedReplicas: replicas,
    currentReplicas: replicas,
    currentRevision: `sim-${generation}`,
    updateRevision: `sim-${generation}`,
  };
}

/** Status a DaemonSet reports when it runs a ready pod on each of `nodes` nodes. */
export function readyDaemonSetStatus(generation: number, nodes: number): Record<string, unknown> {
  return {
    observedGeneration: generation,
    desiredNumberScheduled: nodes,
    currentNumberScheduled: nodes,
    numberReady: nodes,
    numberAvailable: nodes,
    updatedNumberScheduled: nodes,
    numberMisscheduled: 0,
  };
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export async function markStatefulSetReady(apps: AppsV1Api, namespace: string, name: string): Promise<void> {
  const s = await apps.readNamespacedStatefulSet({ name, namespace });
  const status = readyStatefulSetStatus(s.metadata?.generation ?? 1, s.spec?.replicas ?? 1);
  await apps.patchNamespacedStatefulSetStatus({ name, namespace, body: { status } }, mergePatch);
}

export async function markDaemonSetReady(apps: AppsV1Api, namespace: string, name: string, nodes = 2): Promise<void> {
  const d = await apps.readNamespacedDaemonSet({ name, namespace });
  const status = readyDaemonSetStatus(d.metadata?.generation ?? 1, nodes);
  await apps.patchNamespacedDaemonSetStatus({ name, namespace, body: { status } }, mergePatch);
}

/**
 * Keep every StatefulSet and DaemonSet in `namespace` (and the DaemonSets of `<namespace>-node`) reporting ready pods (polling every
 * `intervalMs`) until the returned stop() is called.
 */
export function simulateReadyWorkloads(kc: KubeConfig, namespace: string, intervalMs = 200): () => Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        for (const s of (await apps.listNamespacedStatefulSet({ namespace })).items) {
          const want = s.metadata?.generation ?? 1;
          const replicas = s.spec?.replicas ?? 1;
          if (s.status?.observedGeneration !== want || s.status.readyReplicas !== replicas) {
            await markStatefulSetReady(apps, namespace, s.metadata!.name!).catch(() => undefined);
          }
        }
        // The node agents live in the node agent namespace (`<namespace>-node`).
        for (const ns of [namespace, `${namespace}-node`]) {
          for (const d of (await apps.listNamespacedDaemonSet({ namespace: ns })).items) {
            if (d.status?.observedGeneration !== (d.metadata?.generation ?? 1) || !d.status.desiredNumberScheduled) {
              await markDaemonSetReady(apps, ns, d.metadata!.name!).catch(() => undefined);
            }
          }
        }
      } catch {
        // namespace gone or API server restarting: try again
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}
