/**
 * Taking a mirror over from the original mirror-operator without a moment in which its Service
 * selects no ready cache pod while one exists.
 *
 * The original's children carry `app=docker-registry, mirror=<name>` (and no managed-by label):
 * StatefulSet `registry-mirror-<name>` (2 replicas, selector `app=docker-registry,mirror=<name>`),
 * Services `registry-mirror-<name>` and `-headless`, a DaemonSet named `registry-mirror-<name>`
 * (as its README says) or, in later versions, `registry-mirror-<name>-utils`, and a Secret
 * `registry-mirror-<name>-secret`. A StatefulSet's selector cannot change and its pods are named
 * by ordinal, so the new StatefulSet can only be created under the contract name once the old
 * one is gone and its pods no longer hold the new pods' names. The sequence, one step per
 * reconcile, level-triggered (each step is decided from what is live):
 *
 *  1. Surge: scale the old StatefulSet to R+1 (R = the new replicas) until one of its pods with
 *     ordinal >= R is ready, so that pod keeps serving through the old Service.
 *  2. Delete the old StatefulSet with propagationPolicy Orphan: its pods keep running.
 *  3. Delete the old pods with ordinal < R (they hold the new pods' names).
 *  4. Apply every child except the Service `registry-mirror-<name>` (the headless Service is
 *     replaced: it only names the StatefulSet's pods); a DaemonSet of the old one under the new
 *     DaemonSet's name is deleted first (selectors cannot change).
 *  5. When the new cache's pods are all ready, replace the Service (selector and ports) in one
 *     write: from then on it selects only new, ready pods.
 *  6. Delete what is left of the old one: its remaining pods, its `-utils` DaemonSet once the
 *     new node agent is ready, its nginx Secret.
 *
 * Objects that are not the original operator's are never taken over: they stall the mirror
 * (ForeignObject) with the command that resolves it. "The original's" is decided per object from
 * its labels, its name (exactly what mirror-operator named that kind for this mirror, see
 * legacyNamed) and its ownerReferences (none but the original's kind), never from labels alone: a
 * mirror whose `spec.labels` keeps `app: docker-registry` gives its new children the original's
 * labels too, and another object may carry them.
 */
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';

import { describeError } from '../api/kube-errors.js';
import { type KubeObject, mirrorName } from '../api/kube-object.js';
import { childName, KIND, MANAGED_BY_LABEL, MIRROR_API_VERSION, MIRROR_LABEL } from '../api/names.js';
import type { KubeClient, RegistryMirrorObject } from './kube.js';
import type { LiveMeta } from './plan.js';
import type { Waiting } from './readiness.js';
import type { ReconcileOutcome } from './status.js';

/** The original operator's labels on every object it made. */
export const LEGACY_APP_LABEL = 'app';
export const LEGACY_APP = 'docker-registry';
/** Ready reason while a takeover is under way; the controller resumes one it finds in status after a restart. */
export const TAKING_OVER = 'TakingOver';
/** Stalled reason of a takeover the controller's RBAC does not allow (it resumes from this one too). */
export const TAKEOVER_FORBIDDEN = 'TakeoverForbidden';
/** Stalled reason of a mirror whose children's names hold the original's objects while takeover is off. */
export const TAKEOVER_DISABLED = 'TakeoverDisabled';
/** Where the docs explain the move. */
const MIGRATING = 'see docs/migration.md';
const STEP_RECHECK_MS = 1_000;

export function legacySelector(mirror: string): string {
  return `${LEGACY_APP_LABEL}=${LEGACY_APP},${MIRROR_LABEL}=${mirror}`;
}

/** Kinds of the original operator's objects the takeover reads or deletes. */
export type LegacyKind = 'StatefulSet' | 'DaemonSet' | 'Service' | 'Secret' | 'PersistentVolumeClaim' | 'Pod';

/** The original's StatefulSet volumeClaimTemplate: its claims are `image-store-<StatefulSet>-<ordinal>`. */
export const LEGACY_CLAIM_TEMPLATE = 'image-store';

/** The characters of the suffix the API server appends to a generateName (apimachinery's rand.String: no vowels). */
const GENERATED_NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Whether `name` is a name mirror-operator gave an object of `kind` for this mirror: StatefulSet
 * `registry-mirror-<name>`; DaemonSet that name (its README) or `-utils` (later versions);
 * Services that name and `-headless`; Secret `-secret` (its nginx config); the StatefulSet's claims
 * `image-store-registry-mirror-<name>-<ordinal>`; pods `registry-mirror-<name>-<ordinal>` (the
 * StatefulSet's) or a DaemonSet's name plus the 5 characters the API server generates. It made
 * no ConfigMap. (With `addressingScheme: services` it also made a cert-manager Certificate, whose
 * `-tls` Secret cert-manager owns: neither is touched.)
 */
export function legacyNamed(kind: LegacyKind, name: string, mirror: string): boolean {
  const full = childName(mirror);
  switch (kind) {
    case 'StatefulSet':
      return name === full;
    case 'DaemonSet':
      return name === full || name === `${full}-utils`;
    case 'Service':
      return name === full || name === `${full}-headless`;
    case 'Secret':
      return name === `${full}-secret`;
    case 'PersistentVolumeClaim':
      return new RegExp(`^${escapeRegExp(`${LEGACY_CLAIM_TEMPLATE}-${full}`)}-\\d+$`).test(name);
    case 'Pod':
      return new RegExp(`^${escapeRegExp(full)}-(\\d+|(utils-)?[${GENERATED_NAME_CHARS}]{5})$`).test(name);
  }
}

/**
 * Whether every ownerReference of `obj` is one mirror-operator's objects have: to the RegistryMirror
 * without `controller` (it set those on everything it made), and, on a pod, to the original's
 * StatefulSet or DaemonSet (until the orphaning delete removes it). Ours are controller references;
 * a claim of a StatefulSet with a retention policy (ours) is owned by that StatefulSet.
 */
function legacyOwners(kind: LegacyKind, obj: KubernetesObject, mirror: string): boolean {
  return (obj.metadata?.ownerReferences ?? []).every((r) => {
    if (r.apiVersion === MIRROR_API_VERSION && r.kind === KIND && r.name === mirror) return r.controller !== true;
    if (kind !== 'Pod' || r.apiVersion !== 'apps/v1') return false;
    return (
      (r.kind === 'StatefulSet' || r.kind === 'DaemonSet') &&
      legacyNamed(r.kind, r.name, mirror) &&
      r.controller === true
    );
  });
}

/**
 * Whether an object of `kind` is the original operator's child of this mirror: its labels, a name
 * it gave that kind (legacyNamed), no managed-by label of ours, and no ownerReference but its own.
 */
export function isLegacy(kind: LegacyKind, obj: KubernetesObject | undefined, mirror: string): boolean {
  if (!obj) return false;
  const labels = obj.metadata?.labels ?? {};
  return (
    labels[LEGACY_APP_LABEL] === LEGACY_APP &&
    labels[MIRROR_LABEL] === mirror &&
    !labels[MANAGED_BY_LABEL] &&
    legacyNamed(kind, obj.metadata?.name ?? '', mirror) &&
    legacyOwners(kind, obj, mirror)
  );
}

function isLegacyKind(kind: string): kind is LegacyKind {
  return ['StatefulSet', 'DaemonSet', 'Service', 'Secret', 'PersistentVolumeClaim', 'Pod'].includes(kind);
}

/** The StatefulSet ordinal in a pod name `registry-mirror-<name>-<n>`, or undefined. */
export function ordinal(pod: string, statefulSet: string): number | undefined {
  const m = new RegExp(`^${escapeRegExp(statefulSet)}-(\\d+)$`).exec(pod);
  return m ? Number(m[1]) : undefined;
}

function podReady(p: V1Pod): boolean {
  return (
    !p.metadata?.deletionTimestamp &&
    (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/** What a reconcile should do while a takeover is under way. */
export interface TakeoverStep {
  /** Children to apply now. */
  readonly desired: KubeObject[];
  /** End the reconcile with this outcome instead. */
  readonly outcome?: ReconcileOutcome;
  /** The mirror is mid-takeover: not Ready, with this reason. */
  readonly waiting?: Waiting;
  readonly recheckMs?: number;
}

export class Takeover {
  private readonly active = new Set<string>();

  constructor(
    private readonly opts: {
      client: KubeClient;
      namespace: string;
      logger: Logger;
      /** Take mirrors over at all; when false, the original's objects stall their mirror (TakeoverDisabled). */
      enabled: boolean;
    },
  ) {}

  /**
   * A child could not be applied (409): if the object in the way is the original operator's,
   * start taking the mirror over and say so; else `undefined` (the caller stalls the mirror).
   */
  async claim(mirror: RegistryMirrorObject, child: KubeObject, log: Logger): Promise<ReconcileOutcome | undefined> {
    const name = mirrorName(mirror);
    const existing = await this.opts.client.read(child);
    if (!isLegacyKind(child.kind) || !isLegacy(child.kind, existing, name)) return undefined;
    if (!this.opts.enabled) {
      log.warn(
        { kind: child.kind, name: child.metadata.name },
        'found the original mirror-operator objects; takeover is off',
      );
      return {
        type: 'Stalled',
        reason: TAKEOVER_DISABLED,
        message:
          `${child.kind} ${this.opts.namespace}/${child.metadata.name} is the original mirror-operator's, and taking mirrors over is off. ` +
          `Stop mirror-operator, then apply \`mirror-synth controller-manifests --takeover\` (the controller runs with --takeover and may delete the original's pods and claims; ${MIGRATING}).`,
      };
    }
    this.active.add(name);
    log.info(
      { kind: child.kind, name: child.metadata.name },
      'found the original mirror-operator objects; taking over',
    );
    return this.progress(
      `Found the original mirror-operator's ${child.kind} ${child.metadata.name}; taking the mirror over.`,
      1,
    );
  }

  private progress(message: string, recheckMs = STEP_RECHECK_MS): ReconcileOutcome {
    return {
      type: 'Applied',
      applied: 0,
      unchanged: 0,
      pruned: 0,
      namespace: this.opts.namespace,
      waiting: { reason: TAKING_OVER, message },
      recheckMs,
    };
  }

  async step(
    mirror: RegistryMirrorObject,
    all: KubeObject[],
    live: readonly LiveMeta[],
    log: Logger,
  ): Promise<TakeoverStep> {
    const name = mirrorName(mirror);
    if (!this.opts.enabled) return { desired: all };
    const resumed = mirror.status?.conditions?.some(
      (c) => c.type === 'Ready' && (c.reason === TAKING_OVER || c.reason === TAKEOVER_FORBIDDEN),
    );
    if (!this.active.has(name) && !resumed) return { desired: all };
    this.active.add(name);
    const { client, namespace } = this.opts;
    const base = childName(name);
    const sts = all.find((o) => o.kind === 'StatefulSet');
    const ds = all.find((o) => o.kind === 'DaemonSet');
    const service = all.find((o) => o.kind === 'Service' && o.metadata.name === base);
    const headless = all.find((o) => o.kind === 'Service' && o.metadata.name !== base);
    if (!sts || !ds || !service || !headless) return { desired: all };
    const replicas = (sts.spec as { replicas?: number }).replicas ?? 1;
    const selector = legacySelector(name);
    const act = (what: string) => log.info({ step: what }, 'takeover');

    const oldSts = await client.read(sts);
    const legacySts = isLegacy('StatefulSet', oldSts, name) ? oldSts : undefined;
    const pods = (await client.listPods(namespace, selector)).filter((p) => isLegacy('Pod', p, name));
    const high = pods.filter((p) => (ordinal(p.metadata?.name ?? '', base) ?? -1) >= replicas);
    const low = pods.filter((p) => (ordinal(p.metadata?.name ?? '', base) ?? Infinity) < replicas);
    const anyReady = pods.some(podReady);
    const highReady = high.filter(podReady).length;

    // 0. Its DaemonSets select app=docker-registry,mirror=<name> too: once the StatefulSet is gone
    // they would adopt (and then delete) its orphaned cache pods. Orphan them first: their pods
    // keep running (and keep the nodes' /etc/hosts entries) until the new node agent is ready.
    const oldDaemonSets = (await client.list('apps/v1', 'DaemonSet', namespace, selector)).filter((d) =>
      isLegacy('DaemonSet', d, name),
    );
    if (oldDaemonSets.length > 0) {
      for (const d of oldDaemonSets) {
        act(`delete the original DaemonSet ${d.metadata?.name}, orphaning its pods`);
        await client.delete(
          { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: d.metadata?.name, namespace } },
          'Orphan',
        );
      }
      return {
        desired: [],
        outcome: this.progress('Taking over from mirror-operator: deleted its DaemonSets (their pods keep running).'),
      };
    }
    // 1-2. The old StatefulSet: surge until a pod outside the new pods' names serves, then orphan it.
    if (legacySts) {
      const current = (legacySts as { spec?: { replicas?: number } }).spec?.replicas ?? 1;
      if (anyReady && highReady === 0) {
        if (current < replicas + 1) {
          act(`scale the original StatefulSet to ${replicas + 1}`);
          await client.scale(legacySts, replicas + 1);
        }
        return {
          desired: [],
          outcome: this.progress(
            `Taking over from mirror-operator: scaled its StatefulSet ${base} to ${replicas + 1} replicas; waiting for pod ${base}-${replicas} to be ready, so it serves while the new cache starts.`,
          ),
        };
      }
      act('delete the original StatefulSet, orphaning its pods');
      await client.delete(legacySts, 'Orphan');
      return {
        desired: [],
        outcome: this.progress(
          `Taking over from mirror-operator: deleted its StatefulSet ${base} (its pods keep serving).`,
        ),
      };
    }
    // 3. Old pods holding the new pods' names go, while another old pod serves (or none did).
    if (low.length > 0 && (highReady > 0 || !anyReady)) {
      act(`delete the original pods ${low.map((p) => p.metadata?.name).join(', ')}`);
      for (const p of low)
        await client.delete({ apiVersion: 'v1', kind: 'Pod', metadata: { name: p.metadata?.name, namespace } });
    }
    const ours = new Set(live.map((l) => `${l.kind}/${l.metadata.name}`));
    const oldHeadless = await client.read(headless);
    if (isLegacy('Service', oldHeadless, name) && !ours.has(`Service/${headless.metadata.name}`)) {
      act('replace the original headless Service');
      await client.replaceService(headless, oldHeadless!);
    }
    const cache = live.find((l) => l.kind === 'StatefulSet' && l.metadata.name === sts.metadata.name)?.workload;
    const cacheReady = cache !== undefined && cache.observedGeneration >= cache.generation && cache.ready >= replicas;
    const oldService = await client.read(service);
    const serviceIsOld = isLegacy('Service', oldService, name);
    const hold = (o: KubeObject) => o === service && serviceIsOld;
    if (serviceIsOld) {
      if (!cacheReady) {
        return {
          desired: all.filter((o) => !hold(o)),
          waiting: {
            reason: TAKING_OVER,
            message: `Taking over from mirror-operator: waiting for the new cache pods (${cache?.ready ?? 0}/${replicas} ready) before Service ${base} switches to them.`,
          },
          recheckMs: 5_000,
        };
      }
      // 5. Switch the Service in one write.
      act('switch the Service to the new cache pods');
      await client.replaceService(service, oldService!);
    }
    // 6. What is left of the old one: its remaining cache pods now, its node agent pods once the
    // new node agent runs on every node.
    for (const p of high) {
      act(`delete the original pod ${p.metadata?.name}`);
      await client.delete({ apiVersion: 'v1', kind: 'Pod', metadata: { name: p.metadata?.name, namespace } });
    }
    const agent = live.find((l) => l.kind === 'DaemonSet' && l.metadata.name === ds.metadata.name)?.workload;
    const agentReady =
      agent !== undefined && agent.observedGeneration >= agent.generation && agent.ready >= agent.desired;
    const agents = pods.filter((p) => ordinal(p.metadata?.name ?? '', base) === undefined);
    if (agents.length > 0 && !agentReady) {
      return {
        desired: all.filter((o) => !hold(o)),
        waiting: {
          reason: TAKING_OVER,
          message: `Taking over from mirror-operator: waiting for the new node agent to be ready on every node before removing the original's node pods (${agents.length}).`,
        },
        recheckMs: 5_000,
      };
    }
    for (const p of agents) {
      act(`delete the original node pod ${p.metadata?.name}`);
      await client.delete({ apiVersion: 'v1', kind: 'Pod', metadata: { name: p.metadata?.name, namespace } });
    }
    const secrets = await client.list('v1', 'Secret', namespace, selector);
    for (const s of secrets.filter((x) => isLegacy('Secret', x, name))) {
      act(`delete the original Secret ${s.metadata?.name}`);
      await client.delete({ apiVersion: 'v1', kind: 'Secret', metadata: { name: s.metadata?.name, namespace } });
    }
    // Its cache volumes (the claims carry its StatefulSet's selector labels): a cache is disposable.
    // Only its own: the new cache's claims carry these labels too when spec.labels sets app.
    const claims = (await client.list('v1', 'PersistentVolumeClaim', namespace, selector)).filter((x) =>
      isLegacy('PersistentVolumeClaim', x, name),
    );
    for (const pvc of claims) {
      act(`delete the original claim ${pvc.metadata?.name}`);
      await client.delete({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: pvc.metadata?.name, namespace },
      });
    }
    try {
      const remaining = (await client.listPods(namespace, selector)).filter((p) => isLegacy('Pod', p, name));
      if (remaining.length > 0) {
        return {
          desired: all.filter((o) => !hold(o)),
          waiting: {
            reason: TAKING_OVER,
            message: 'Taking over from mirror-operator: waiting for its last pods to go.',
          },
          recheckMs: 2_000,
        };
      }
    } catch (err) {
      log.debug({ err: describeError(err) }, 'could not list pods');
    }
    this.active.delete(name);
    log.info('takeover from mirror-operator complete');
    return { desired: all };
  }
}
