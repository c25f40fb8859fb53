/**
 * What the controller watches, declared as data: for each resource, where it lives, what of it
 * is cached, and which mirrors an event concerns. controller.ts turns each entry into a
 * supervised informer feeding the work queue; nothing here reconciles.
 *
 * Events that change nothing the controller acts on queue nothing:
 * - a RegistryMirror update that leaves `metadata.generation`, the deletion mark and its
 *   `mirror` label alone (such as the controller's own status write);
 * - a child update that is the echo of the controller's own apply and leaves the workload's
 *   readiness as it was (a StatefulSet's status churning through revisions, say).
 */
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  NetworkingV1Api,
  setHeaderOptions,
} from '@kubernetes/client-node';

import { API_GROUP, API_VERSION, MANAGED_SELECTOR, MIRROR_LABEL, PLURAL } from '../api/names.js';
import { ALLOWLIST_NAME } from '../api/policy.js';
import { metadataOnly, PARTIAL_METADATA_LIST, trimMetadata } from './informer.js';
import type { RegistryMirrorObject } from './kube.js';
import type { LiveMeta } from './plan.js';
import { sameWorkloadStatus, workloadStatus } from './readiness.js';

export type Verb = 'add' | 'update' | 'delete';

/** What the event handlers may consult. */
export interface WatchContext {
  /** File a child under its mirror; returns the mirror (undefined when the object is not ours). */
  indexChild(obj: LiveMeta, verb: Verb): string | undefined;
  /** Whether a child event is the echo of the controller's own apply. */
  isOwnWrite(obj: LiveMeta): boolean;
  /** Mirrors whose spec.credentialsSecret or spec.objectStorage.s3.credentialsSecret names this Secret. */
  mirrorsUsingSecret(name: string): string[];
  /** Mirrors stalled with this reason (a HostConflict or NameCollision may clear when another mirror changes). */
  mirrorsStalledBy(reason: string): string[];
  /** Every mirror known (an allowlist change re-checks them all). */
  allMirrors(): string[];
}

/** One watched resource. */
export interface WatchSpec<T extends KubernetesObject = KubernetesObject> {
  /** Short name for logs and metrics. */
  readonly name: string;
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly metadataOnly?: boolean;
  readonly transform: (obj: T) => T;
  /** The mirrors to queue for an event. */
  readonly enqueue: (obj: T, verb: Verb, previous: T | undefined) => readonly string[];
}

/** Ask the typed client for PartialObjectMetadataList instead of the full list. */
const metadataListOptions = setHeaderOptions('Accept', PARTIAL_METADATA_LIST);

/** Whether a RegistryMirror update asks for a reconcile: spec, deletion or our label changed. */
export function mirrorChanged(obj: RegistryMirrorObject, previous: RegistryMirrorObject | undefined): boolean {
  if (previous === undefined) return true;
  const m = obj.metadata ?? {};
  const p = previous.metadata ?? {};
  return (
    m.generation !== p.generation ||
    Boolean(m.deletionTimestamp) !== Boolean(p.deletionTimestamp) ||
    m.labels?.[MIRROR_LABEL] !== m.name ||
    m.uid !== p.uid
  );
}

/**
 * The child kinds the controller applies and watches (only objects carrying its managed-by
 * label): every kind a mirror has. A child it has in no cache is not known to be its own, so it
 * is applied without force and an object someone else made of that name stalls the mirror
 * (ForeignObject) instead of being overwritten.
 */
const CHILDREN = [
  { name: 'configmaps', apiVersion: 'v1', kind: 'ConfigMap', group: '/api/v1' },
  { name: 'services', apiVersion: 'v1', kind: 'Service', group: '/api/v1' },
  {
    name: 'networkpolicies',
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    group: '/apis/networking.k8s.io/v1',
  },
  { name: 'statefulsets', apiVersion: 'apps/v1', kind: 'StatefulSet', group: '/apis/apps/v1' },
  { name: 'daemonsets', apiVersion: 'apps/v1', kind: 'DaemonSet', group: '/apis/apps/v1' },
] as const;

/** Child kinds whose status the controller reads (readiness): watched whole, the others metadata-only. */
const WORKLOAD_KINDS: ReadonlySet<string> = new Set(['StatefulSet', 'DaemonSet']);

/** Kinds the controller has a cache of (a child of any other kind is read before it is applied). */
export const WATCHED_KINDS: ReadonlySet<string> = new Set(['Secret', ...CHILDREN.map((c) => c.kind)]);

/** Child kinds that live in the node agent namespace (the node agent's ConfigMap and DaemonSet). */
const NODE_AGENT_KINDS: ReadonlySet<string> = new Set(['ConfigMap', 'DaemonSet']);

/**
 * Every watch of a controller whose children live in `namespace` and, the node agents', in
 * `nodeAgentNamespace`. Children are watched in the output namespace whatever their kind, so a
 * node agent left there by an earlier version is seen and pruned.
 */
export function controllerWatches(
  kc: KubeConfig,
  namespace: string,
  ctx: WatchContext,
  nodeAgentNamespace: string = namespace,
): WatchSpec[] {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const networking = kc.makeApiClient(NetworkingV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const labelSelector = MANAGED_SELECTOR;

  const mirrors: WatchSpec<RegistryMirrorObject> = {
    name: MIRRORS_WATCH,
    path: `/apis/${API_GROUP}/${API_VERSION}/${PLURAL}`,
    list: async () =>
      (await custom.listClusterCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        plural: PLURAL,
      })) as KubernetesListObject<RegistryMirrorObject>,
    transform: trimMetadata,
    enqueue: (obj, verb, previous) => {
      const name = obj.metadata?.name;
      if (!name || (verb === 'update' && !mirrorChanged(obj, previous))) return [];
      // A mirror that appears, goes or changes its hosts may free or take a node host (or a
      // child's name) of another.
      const waiting = [...ctx.mirrorsStalledBy('HostConflict'), ...ctx.mirrorsStalledBy('NameCollision')];
      return [name, ...waiting.filter((m) => m !== name)];
    },
  };

  const onChild = (obj: LiveMeta, verb: Verb, previous: LiveMeta | undefined): string[] => {
    const mirror = ctx.indexChild(obj, verb);
    if (mirror === undefined) return [];
    if (verb === 'delete' || !ctx.isOwnWrite(obj)) return [mirror];
    // Our own write echoed back (an add is one the reconcile that made it already accounted
    // for): only a later change of the workload's readiness matters.
    if (verb === 'add') return [];
    return previous !== undefined && sameWorkloadStatus(previous.workload, obj.workload) ? [] : [mirror];
  };

  // Secrets: metadata only. A referenced Secret's data is read when a reconcile needs it
  // (ReferencedSecrets), so the process never holds the data of the namespace's other Secrets.
  const secrets: WatchSpec = {
    name: SECRETS_WATCH,
    path: `/api/v1/namespaces/${namespace}/secrets`,
    metadataOnly: true,
    list: async () => core.listNamespacedSecret({ namespace }, metadataListOptions),
    transform: (o) => ({ ...metadataOnly(o), apiVersion: 'v1', kind: 'Secret' }),
    enqueue: (obj, verb, previous) => {
      const asChild = onChild(obj as LiveMeta, verb, previous as LiveMeta | undefined);
      if (verb === 'update' && previous?.metadata?.resourceVersion === obj.metadata?.resourceVersion) return asChild;
      return [...asChild, ...ctx.mirrorsUsingSecret(obj.metadata?.name ?? '')];
    },
  };

  // Children: only what planning and readiness read (metadata; a workload's status). Kinds
  // without a status go metadata-only: the API server then sends no ConfigMap data or Service
  // spec for every echo of an apply, and the controller parses none.
  const childWatch = (
    { name, apiVersion, kind, group }: (typeof CHILDREN)[number],
    ns: string,
    watchName: string,
  ): WatchSpec => ({
    name: watchName,
    path: `${group}/namespaces/${ns}/${name}`,
    labelSelector,
    metadataOnly: !WORKLOAD_KINDS.has(kind),
    list: () => listChildren(kind, { core, apps, networking }, ns, labelSelector),
    transform: (o) => {
      const workload = workloadStatus({ ...o, kind });
      return { ...metadataOnly(o), apiVersion, kind, ...(workload ? { workload } : {}) };
    },
    enqueue: (obj, verb, previous) => onChild(obj as LiveMeta, verb, previous as LiveMeta | undefined),
  });
  const children = CHILDREN.map((c) => childWatch(c, namespace, c.name));
  const agentChildren =
    nodeAgentNamespace === namespace
      ? []
      : CHILDREN.filter((c) => NODE_AGENT_KINDS.has(c.kind)).map((c) =>
          childWatch(c, nodeAgentNamespace, `node-agent-${c.name}`),
        );

  // The allowlist ConfigMap, whole (its data is the lists): any change re-checks every mirror, so a
  // list edited while the controller runs takes effect without a restart.
  const allowlist: WatchSpec = {
    name: ALLOWLIST_WATCH,
    path: `/api/v1/namespaces/${namespace}/configmaps`,
    fieldSelector: ALLOWLIST_FIELD_SELECTOR,
    list: async () => core.listNamespacedConfigMap({ namespace, fieldSelector: ALLOWLIST_FIELD_SELECTOR }),
    transform: trimMetadata,
    enqueue: (obj, verb, previous) => {
      const data = (o: KubernetesObject | undefined) =>
        JSON.stringify((o as { data?: unknown } | undefined)?.data ?? {});
      if (verb === 'update' && previous !== undefined && data(previous) === data(obj)) return [];
      return ctx.allMirrors();
    },
  };

  return [mirrors, secrets, ...children, ...agentChildren, allowlist];
}

/** The informer of the allowlist ConfigMap. */
export const ALLOWLIST_WATCH = 'allowlist';
/** The informer of RegistryMirrors. */
export const MIRRORS_WATCH = PLURAL;
/** The informer of the output namespace's Secrets (metadata only). */
export const SECRETS_WATCH = 'secrets';
const ALLOWLIST_FIELD_SELECTOR = `metadata.name=${ALLOWLIST_NAME}`;

async function listChildren(
  kind: (typeof CHILDREN)[number]['kind'],
  api: { core: CoreV1Api; apps: AppsV1Api; networking: NetworkingV1Api },
  namespace: string,
  labelSelector: string,
): Promise<KubernetesListObject<KubernetesObject>> {
  const args = { namespace, labelSelector };
  switch (kind) {
    case 'ConfigMap':
      return api.core.listNamespacedConfigMap(args, metadataListOptions);
    case 'Service':
      return api.core.listNamespacedService(args, metadataListOptions);
    case 'NetworkPolicy':
      return api.networking.listNamespacedNetworkPolicy(args, metadataListOptions);
    case 'StatefulSet':
      return api.apps.listNamespacedStatefulSet(args);
    case 'DaemonSet':
      return api.apps.listNamespacedDaemonSet(args);
  }
}
