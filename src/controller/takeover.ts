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
 * Each reconcile observes what is live (observe), decides the phase (takeoverPhase), and runs that
 * phase's function. Which objects are the original's is decided in legacy.ts.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';

import { childName } from '../api/children.js';
import { describeError } from '../api/kube-errors.js';
import { type KubeObject, mirrorName } from '../api/kube-object.js';
import type { KubeClient, RegistryMirrorObject } from './kube.js';
import { isLegacy, isLegacyKind, legacySelector, ordinal, podReady } from './legacy.js';
import type { LiveMeta } from './plan.js';
import type { Waiting } from './readiness.js';
import type { ReconcileOutcome } from './status.js';

/** Ready reason while a takeover is under way; the controller resumes one it finds in status after a restart. */
export const TAKING_OVER = 'TakingOver';
/** Stalled reason of a takeover the controller's RBAC does not allow (it resumes from this one too). */
export const TAKEOVER_FORBIDDEN = 'TakeoverForbidden';
/** Stalled reason of a mirror whose children's names hold the original's objects while takeover is off. */
export const TAKEOVER_DISABLED = 'TakeoverDisabled';
/** Where the docs explain the move. */
const MIGRATING = 'see docs/migration.md';
const STEP_RECHECK_MS = 1_000;

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

/** What a takeover step is decided from: the mirror's new children and the original's live objects. */
export interface Observed {
  readonly name: string;
  /** `registry-mirror-<name>`: the StatefulSet, its pods' prefix, the Service. */
  readonly base: string;
  readonly all: KubeObject[];
  readonly live: readonly LiveMeta[];
  readonly sts: KubeObject;
  readonly ds: KubeObject;
  readonly service: KubeObject;
  readonly headless: KubeObject;
  /** The new StatefulSet's replicas. */
  readonly replicas: number;
  readonly selector: string;
  /** The original's StatefulSet, while it exists. */
  readonly legacySts: { spec?: { replicas?: number } } | undefined;
  /** The original's DaemonSets (its node agent). */
  readonly daemonSets: readonly { metadata?: { name?: string } }[];
  /** The original's pods: its cache pods by ordinal (below R hold the new pods' names) and its node pods. */
  readonly pods: readonly V1Pod[];
  readonly high: readonly V1Pod[];
  readonly low: readonly V1Pod[];
}

export type TakeoverPhase = 'orphan-daemonsets' | 'surge' | 'orphan-statefulset' | 'move';

/**
 * The phase a takeover is in. Its DaemonSets go first (once the StatefulSet is gone they would
 * adopt its orphaned cache pods); then the StatefulSet surges until a pod outside the new pods'
 * names serves, and is orphaned; then the move: free the names, switch the Service, clean up.
 */
export function takeoverPhase(o: {
  readonly daemonSets: number;
  readonly statefulSet: boolean;
  readonly anyReady: boolean;
  readonly highReady: number;
}): TakeoverPhase {
  if (o.daemonSets > 0) return 'orphan-daemonsets';
  if (!o.statefulSet) return 'move';
  return o.anyReady && o.highReady === 0 ? 'surge' : 'orphan-statefulset';
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

  /** One step of a takeover under way (all of `all` when there is none): observe, decide the phase, run it. */
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
    const o = await this.observe(name, all, live);
    if (!o) return { desired: all };
    const act = (what: string) => log.info({ step: what }, 'takeover');
    const phase = takeoverPhase({
      daemonSets: o.daemonSets.length,
      statefulSet: o.legacySts !== undefined,
      anyReady: o.pods.some(podReady),
      highReady: o.high.filter(podReady).length,
    });
    switch (phase) {
      case 'orphan-daemonsets':
        return this.orphanDaemonSets(o, act);
      case 'surge':
        return this.surge(o, act);
      case 'orphan-statefulset':
        return this.orphanStatefulSet(o, act);
      case 'move':
        return this.move(o, act, log);
    }
  }

  /** The original's objects as they are now; undefined when the new children lack one the takeover needs. */
  private async observe(name: string, all: KubeObject[], live: readonly LiveMeta[]): Promise<Observed | undefined> {
    const { client, namespace } = this.opts;
    const base = childName(name);
    const sts = all.find((o) => o.kind === 'StatefulSet');
    const ds = all.find((o) => o.kind === 'DaemonSet');
    const service = all.find((o) => o.kind === 'Service' && o.metadata.name === base);
    const headless = all.find((o) => o.kind === 'Service' && o.metadata.name !== base);
    if (!sts || !ds || !service || !headless) return undefined;
    const replicas = (sts.spec as { replicas?: number }).replicas ?? 1;
    const selector = legacySelector(name);
    const oldSts = await client.read(sts);
    const pods = (await client.listPods(namespace, selector)).filter((p) => isLegacy('Pod', p, name));
    const daemonSets = (await client.list('apps/v1', 'DaemonSet', namespace, selector)).filter((d) =>
      isLegacy('DaemonSet', d, name),
    );
    return {
      ...{ name, base, all, live, sts, ds, service, headless, replicas, selector, pods, daemonSets },
      legacySts: isLegacy('StatefulSet', oldSts, name) ? (oldSts as Observed['legacySts']) : undefined,
      high: pods.filter((p) => (ordinal(p.metadata?.name ?? '', base) ?? -1) >= replicas),
      low: pods.filter((p) => (ordinal(p.metadata?.name ?? '', base) ?? Infinity) < replicas),
    };
  }

  /**
   * 0. Its DaemonSets select app=docker-registry,mirror=<name> too: once the StatefulSet is gone
   * they would adopt (and then delete) its orphaned cache pods. Orphan them first: their pods
   * keep running (and keep the nodes' /etc/hosts entries) until the new node agent is ready.
   */
  private async orphanDaemonSets(o: Observed, act: (what: string) => void): Promise<TakeoverStep> {
    for (const d of o.daemonSets) {
      act(`delete the original DaemonSet ${d.metadata?.name}, orphaning its pods`);
      await this.opts.client.delete(
        {
          apiVersion: 'apps/v1',
          kind: 'DaemonSet',
          metadata: { name: d.metadata?.name, namespace: this.opts.namespace },
        },
        'Orphan',
      );
    }
    return {
      desired: [],
      outcome: this.progress('Taking over from mirror-operator: deleted its DaemonSets (their pods keep running).'),
    };
  }

  /** 1. Surge: one more old cache pod, outside the new pods' names, to serve while the new cache starts. */
  private async surge(o: Observed, act: (what: string) => void): Promise<TakeoverStep> {
    const { base, replicas } = o;
    if ((o.legacySts?.spec?.replicas ?? 1) < replicas + 1) {
      act(`scale the original StatefulSet to ${replicas + 1}`);
      await this.opts.client.scale(o.legacySts as KubeObject, replicas + 1);
    }
    return {
      desired: [],
      outcome: this.progress(
        `Taking over from mirror-operator: scaled its StatefulSet ${base} to ${replicas + 1} replicas; waiting for pod ${base}-${replicas} to be ready, so it serves while the new cache starts.`,
      ),
    };
  }

  /** 2. Delete the old StatefulSet, orphaning its pods: they keep serving. */
  private async orphanStatefulSet(o: Observed, act: (what: string) => void): Promise<TakeoverStep> {
    act('delete the original StatefulSet, orphaning its pods');
    await this.opts.client.delete(o.legacySts as KubeObject, 'Orphan');
    return {
      desired: [],
      outcome: this.progress(
        `Taking over from mirror-operator: deleted its StatefulSet ${o.base} (its pods keep serving).`,
      ),
    };
  }

  /** 3-6. Free the new pods' names, apply the new children, switch the Service, clean up. */
  private async move(o: Observed, act: (what: string) => void, log: Logger): Promise<TakeoverStep> {
    await this.freeNames(o, act);
    const switched = await this.switchService(o, act);
    if (switched.waiting) return switched.waiting;
    return this.cleanUp(o, act, switched.hold, log);
  }

  /** 3. Old pods holding the new pods' names go, while another old pod serves (or none did); the headless Service is replaced. */
  private async freeNames(o: Observed, act: (what: string) => void): Promise<void> {
    const { client, namespace } = this.opts;
    if (o.low.length > 0 && (o.high.some(podReady) || !o.pods.some(podReady))) {
      act(`delete the original pods ${o.low.map((p) => p.metadata?.name).join(', ')}`);
      for (const p of o.low)
        await client.delete({ apiVersion: 'v1', kind: 'Pod', metadata: { name: p.metadata?.name, namespace } });
    }
    const ours = new Set(o.live.map((l) => `${l.kind}/${l.metadata.name}`));
    const oldHeadless = await client.read(o.headless);
    if (isLegacy('Service', oldHeadless, o.name) && !ours.has(`Service/${o.headless.metadata.name}`)) {
      act('replace the original headless Service');
      await client.replaceService(o.headless, oldHeadless!);
    }
  }

  /**
   * 4-5. While the Service is the original's, every other child is applied; once the new cache's
   * pods are all ready, the Service is replaced (selector and ports) in one write.
   */
  private async switchService(
    o: Observed,
    act: (what: string) => void,
  ): Promise<{ readonly hold: (c: KubeObject) => boolean; readonly waiting?: TakeoverStep }> {
    const { client } = this.opts;
    const cache = o.live.find((l) => l.kind === 'StatefulSet' && l.metadata.name === o.sts.metadata.name)?.workload;
    const cacheReady = cache !== undefined && cache.observedGeneration >= cache.generation && cache.ready >= o.replicas;
    const oldService = await client.read(o.service);
    const serviceIsOld = isLegacy('Service', oldService, o.name);
    const hold = (c: KubeObject) => c === o.service && serviceIsOld;
    if (!serviceIsOld) return { hold };
    if (!cacheReady) {
      const message = `Taking over from mirror-operator: waiting for the new cache pods (${cache?.ready ?? 0}/${o.replicas} ready) before Service ${o.base} switches to them.`;
      return { hold, waiting: this.holding(o, hold, message, 5_000) };
    }
    act('switch the Service to the new cache pods');
    await client.replaceService(o.service, oldService!);
    return { hold };
  }

  /**
   * 6. What is left of the old one: its remaining cache pods now, its node agent pods once the
   * new node agent runs on every node, its Secret and claims; done when its last pod is gone.
   */
  private async cleanUp(
    o: Observed,
    act: (what: string) => void,
    hold: (c: KubeObject) => boolean,
    log: Logger,
  ): Promise<TakeoverStep> {
    const { client, namespace } = this.opts;
    // Every kind deleted here is in the core group (v1).
    const remove = async (what: string, kind: string, items: readonly { metadata?: { name?: string } }[]) => {
      for (const x of items) {
        act(`delete the original ${what} ${x.metadata?.name}`);
        await client.delete({ apiVersion: 'v1', kind, metadata: { name: x.metadata?.name, namespace } });
      }
    };
    await remove('pod', 'Pod', o.high);
    const agent = o.live.find((l) => l.kind === 'DaemonSet' && l.metadata.name === o.ds.metadata.name)?.workload;
    const agentReady =
      agent !== undefined && agent.observedGeneration >= agent.generation && agent.ready >= agent.desired;
    const agents = o.pods.filter((p) => ordinal(p.metadata?.name ?? '', o.base) === undefined);
    if (agents.length > 0 && !agentReady) {
      const message = `Taking over from mirror-operator: waiting for the new node agent to be ready on every node before removing the original's node pods (${agents.length}).`;
      return this.holding(o, hold, message, 5_000);
    }
    await remove('node pod', 'Pod', agents);
    const secrets = await client.list('v1', 'Secret', namespace, o.selector);
    await remove(
      'Secret',
      'Secret',
      secrets.filter((x) => isLegacy('Secret', x, o.name)),
    );
    // Its cache volumes (the claims carry its StatefulSet's selector labels): a cache is disposable.
    // Only its own: the new cache's claims carry these labels too when spec.labels sets app.
    const claims = (await client.list('v1', 'PersistentVolumeClaim', namespace, o.selector)).filter((x) =>
      isLegacy('PersistentVolumeClaim', x, o.name),
    );
    await remove('claim', 'PersistentVolumeClaim', claims);
    try {
      const remaining = (await client.listPods(namespace, o.selector)).filter((p) => isLegacy('Pod', p, o.name));
      if (remaining.length > 0)
        return this.holding(o, hold, 'Taking over from mirror-operator: waiting for its last pods to go.', 2_000);
    } catch (err) {
      log.debug({ err: describeError(err) }, 'could not list pods');
    }
    this.active.delete(o.name);
    log.info('takeover from mirror-operator complete');
    return { desired: o.all };
  }

  /** Apply every child but the held Service, and look again after `recheckMs`. */
  private holding(o: Observed, hold: (c: KubeObject) => boolean, message: string, recheckMs: number): TakeoverStep {
    return { desired: o.all.filter((c) => !hold(c)), waiting: { reason: TAKING_OVER, message }, recheckMs };
  }
}
