/**
 * Reconcile one RegistryMirror: read it and its Secret from the informer caches, synthesize its
 * children with the same code as the CLI, apply what changed, prune what is no longer wanted,
 * and write status once.
 */
import type { Logger } from 'pino';

import { SpecError } from '../api/errors.js';
import { findHostConflicts, type HostConflict } from '../api/hosts.js';
import { describeError, errorStatus, isTransient } from '../api/kube-errors.js';
import { type KubeObject, mirrorName } from '../api/kube-object.js';
import {
  ALLOWLIST_NAME,
  CONTENT_HASH_ANNOTATION,
  GENERATION_KINDS,
  KIND,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  MIRROR_API_VERSION,
  MIRROR_LABEL,
  type NodeRuntime,
} from '../api/names.js';
import { ALLOWLISTS, BROKEN_LIST_TAIL, governedField, type LivePolicy, policyProblems } from '../api/policy.js';
import type { MirrorStatus } from '../api/schema.js';
import { holdsClaims, olderFirst, type Seniority } from '../api/seniority.js';
import { findNameCollisions, type MirrorInput, type NameCollision, parseMirrorResource } from '../api/validate.js';
import { fillImageProblem } from '../construct/images.js';
import { synthesizeMirror } from '../synth/chart.js';
import { objectStorageEndpoint, resolveCredentials, resolveObjectStorageCredentials } from './credentials.js';
import { canonicalJson, withContentHash } from './hash.js';
import type { KubeClient, RegistryMirrorObject } from './kube.js';
import type { ControllerMetrics } from './metrics.js';
import { type AppliedRecord, childKey, type LiveMeta, planChildren } from './plan.js';
import {
  podProblem,
  podProblemWaiting,
  servingMessage,
  type Waiting,
  type WorkloadStatus,
  workloadWaiting,
} from './readiness.js';
import type { ReferencedSecrets } from './secrets.js';
import { CONDITION_TYPES, eventFor, nextStatus, type ReconcileOutcome, statusChanged } from './status.js';
import { Takeover, TAKEOVER_FORBIDDEN, type TakeoverStep } from './takeover.js';

/** A SpecError as one condition message: every problem, then what to do. */
export function specMessage(err: SpecError): string {
  return `${err.problems.map((p) => p.message).join('; ')}. Fix the RegistryMirror spec.`;
}

/** Read access to an informer cache. */
export interface Cache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(): ReadonlyArray<T>;
}

/**
 * Live children by mirror name, kept up to date from the child informers' callbacks, so a
 * reconcile does not scan every cached object.
 */
export class ChildIndex {
  private readonly byMirror = new Map<string, Map<string, LiveMeta>>();
  /** Child key → the mirror it is filed under. */
  private readonly owner = new Map<string, string>();
  /** Child key → the child, whichever mirror it is filed under. */
  private readonly byKey = new Map<string, LiveMeta>();

  /** The mirror a child belongs to, when it is one of ours. */
  static mirrorOf(obj: LiveMeta): string | undefined {
    const labels = obj.metadata.labels;
    if (labels?.[MANAGED_BY_LABEL] !== MANAGED_BY) return undefined;
    return labels[MIRROR_LABEL] || undefined;
  }

  update(obj: LiveMeta, verb: 'add' | 'update' | 'delete'): string | undefined {
    const key = childKey(obj);
    const mirror = ChildIndex.mirrorOf(obj);
    // A relabelled child: drop it from the mirror it was filed under.
    const previous = this.owner.get(key);
    if (previous !== undefined && (previous !== mirror || verb === 'delete')) {
      const children = this.byMirror.get(previous);
      children?.delete(key);
      if (children?.size === 0) this.byMirror.delete(previous);
      this.owner.delete(key);
      this.byKey.delete(key);
    }
    if (mirror === undefined || verb === 'delete') return mirror;
    let children = this.byMirror.get(mirror);
    if (!children) this.byMirror.set(mirror, (children = new Map<string, LiveMeta>()));
    children.set(key, obj);
    this.owner.set(key, mirror);
    this.byKey.set(key, obj);
    return mirror;
  }

  /** The child of this key (`Kind/name`), whichever mirror it belongs to. */
  get(key: string): LiveMeta | undefined {
    return this.byKey.get(key);
  }

  of(mirror: string): LiveMeta[] {
    return [...(this.byMirror.get(mirror)?.values() ?? [])];
  }

  mirrors(): string[] {
    return [...this.byMirror.keys()];
  }
}

/** What the worker should do with a key after a reconcile. */
export type Requeue = 'none' | 'backoff' | { readonly afterMs: number };

/** How the controller is told the fill image, for the NoFillImage message. */
const CONTROLLER_FILL_IMAGE_SETTINGS =
  "the controller's --fill-image or FILL_IMAGE, which `mirror-synth controller-manifests` sets to the controller's own image (apply its output again)";

/** How often a mirror whose pods are not ready yet is looked at again without an event (a crash loop changes no workload status). */
export const WAITING_RECHECK_MS = 30_000;

export interface ReconcilerOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly clusterDomain?: string;
  readonly nodeRuntime?: NodeRuntime;
  readonly nodeAgentImage?: string;
  /** The image of the streaming fill: the controller's own. @default - none: `spec.fill: streaming` stalls with NoFillImage */
  readonly fillImage?: string;
  /**
   * What mirrors may name, as it is now (the allowlist ConfigMap changes while the controller
   * runs); one it refuses stalls with NotAllowed, one a broken list governs with InvalidAllowlist.
   * @default - anything
   */
  readonly policy?: () => LivePolicy;
  /** Take mirrors over from the original mirror-operator. @default false */
  readonly takeover?: boolean;
  readonly mirrors: Cache<RegistryMirrorObject>;
  /** Referenced Secrets, with their data (the informer holds metadata only). */
  readonly secrets: ReferencedSecrets;
  readonly children: ChildIndex;
  /** Kinds that have an informer; others are read with a GET before deciding to apply. */
  readonly watchedKinds: ReadonlySet<string>;
  readonly logger: Logger;
  readonly metrics: ControllerMetrics;
  readonly now?: () => Date;
}

interface StatusMemo {
  readonly uid: string;
  /** Canonical JSON of the status the cache showed before the write. */
  readonly before: string;
  readonly written: MirrorStatus;
  readonly resourceVersion: string | undefined;
}

/** Objects grouped by kind, the groups in apply order (as sortForApply orders them). */
function byKind(objs: readonly KubeObject[]): KubeObject[][] {
  const groups: KubeObject[][] = [];
  for (const o of objs) {
    const last = groups[groups.length - 1];
    if (last && last[0].kind === o.kind) last.push(o);
    else groups.push([o]);
  }
  return groups;
}

/** A RegistryMirror as "the older mirror wins" (api/seniority.ts) compares it. */
export function seniorityOf(m: RegistryMirrorObject): Seniority {
  const c = m.metadata?.creationTimestamp as Date | string | undefined;
  return {
    name: mirrorName(m),
    ...(c === undefined ? {} : { creationTimestamp: c instanceof Date ? c.toISOString() : String(c) }),
    holdsClaims: holdsClaims(m.status),
  };
}

/** Mirrors oldest first: the order in which they keep node hosts and names (api/seniority.ts). */
export function byAge(a: RegistryMirrorObject, b: RegistryMirrorObject): number {
  return olderFirst(seniorityOf(a), seniorityOf(b));
}

/** The host conflict that stalls `name`, if an older mirror configures one of its node hosts. */
export function hostConflictOf(name: string, mirrors: readonly RegistryMirrorObject[]): HostConflict | undefined {
  const hosted = [...mirrors]
    .filter(
      (m) => !m.metadata?.deletionTimestamp && typeof (m.spec as { upstreamUrl?: unknown })?.upstreamUrl === 'string',
    )
    .sort(byAge)
    .map((m) => ({
      name: mirrorName(m),
      source: `RegistryMirror ${mirrorName(m)}`,
      spec: m.spec as { upstreamUrl: string; masqueradeUrl?: string },
    }));
  return findHostConflicts(hosted).find((c) => c.mirror === name);
}

/**
 * The name collision that stalls `name`, if an older mirror creates an object of the kind and
 * name one of its children would have. A mirror being deleted still counts: its children are
 * there until the garbage collector removes them.
 */
export function nameCollisionOf(name: string, mirrors: readonly RegistryMirrorObject[]): NameCollision | undefined {
  const named = [...mirrors]
    .sort(byAge)
    .map((m) => ({ name: mirrorName(m), source: `RegistryMirror ${mirrorName(m)}` }));
  return findNameCollisions(named).find((c) => c.mirror === name);
}

/** The RegistryMirror that controls `obj` through its ownerReferences, if any. */
export function controllingMirror(obj: LiveMeta): string | undefined {
  return (obj.metadata.ownerReferences ?? []).find(
    (r) => r.controller === true && r.kind === KIND && r.apiVersion === MIRROR_API_VERSION,
  )?.name;
}

export class Reconciler {
  private readonly applied = new Map<string, AppliedRecord>();
  private readonly statusMemo = new Map<string, StatusMemo>();
  private readonly now: () => Date;
  readonly takeover: Takeover;

  constructor(private readonly opts: ReconcilerOptions) {
    this.now = opts.now ?? (() => new Date());
    this.takeover = new Takeover({
      client: opts.client,
      namespace: opts.namespace,
      logger: opts.logger,
      enabled: opts.takeover ?? false,
    });
  }

  /** Whether a child event is only the echo of the controller's own apply (nothing to do). */
  isOwnWrite(child: LiveMeta): boolean {
    const mirror = ChildIndex.mirrorOf(child);
    if (mirror === undefined) return false;
    const rec = this.applied.get(`${mirror}|${childKey(child)}`);
    if (!rec || rec.hash !== child.metadata.annotations?.[CONTENT_HASH_ANNOTATION]) return false;
    if (rec.pending) return true;
    if (rec.generation !== undefined) return rec.generation === child.metadata.generation;
    return rec.resourceVersion === child.metadata.resourceVersion;
  }

  async reconcile(name: string): Promise<Requeue> {
    const { logger, metrics } = this.opts;
    const log = logger.child({ mirror: name });
    const end = metrics.reconcileDuration.startTimer();
    try {
      const mirror = this.opts.mirrors.get(name);
      if (!mirror) {
        await this.pruneOrphans(name, log);
        for (const condition of CONDITION_TYPES) metrics.mirrorCondition.remove({ mirror: name, condition });
        metrics.reconcileTotal.inc({ result: 'deleted' });
        log.debug({ result: 'deleted' }, 'reconciled');
        return 'none';
      }
      if (mirror.metadata?.deletionTimestamp) return 'none'; // the garbage collector removes the children
      // The label is independent of the children: written while they are applied.
      const labelled = this.ensureLabel(mirror, log);
      const outcome = await this.converge(mirror, log);
      await labelled;
      await this.report(mirror, outcome, log);
      const result =
        outcome.type === 'Applied'
          ? outcome.waiting
            ? 'waiting'
            : 'success'
          : outcome.type === 'Stalled'
            ? 'stalled'
            : 'retry';
      metrics.reconcileTotal.inc({ result });
      log.debug({ result }, 'reconciled');
      if (outcome.type === 'Retrying') return 'backoff';
      if (outcome.type === 'Applied' && outcome.waiting) return { afterMs: outcome.recheckMs ?? WAITING_RECHECK_MS };
      return 'none';
    } finally {
      end();
    }
  }

  /** `mirror=<name>` on the RegistryMirror itself, so the original operator's `kubectl get -l mirror=<name>` lists it. */
  private async ensureLabel(mirror: RegistryMirrorObject, log: Logger): Promise<void> {
    const name = mirrorName(mirror);
    if (mirror.metadata?.labels?.[MIRROR_LABEL] === name) return;
    try {
      await this.opts.client.labelMirror(name);
    } catch (err) {
      // A label someone else owns with another value: leave it, say so, and carry on.
      this.opts.metrics.errorsTotal.inc({ type: 'label' });
      log.warn({ err: describeError(err) }, `could not set the label ${MIRROR_LABEL}=${name} on the RegistryMirror`);
    }
  }

  /** Forget in-memory records of a mirror (after it is gone). */
  private forget(name: string): void {
    this.statusMemo.delete(name);
    for (const key of this.applied.keys()) if (key.startsWith(`${name}|`)) this.applied.delete(key);
  }

  private async pruneOrphans(name: string, log: Logger): Promise<void> {
    const owned = planChildren({
      mirror: name,
      desired: [],
      live: this.opts.children.of(name),
      applied: () => undefined,
    }).prune;
    for (const child of owned) {
      await this.opts.client.delete(child);
      log.info(
        { kind: child.kind, name: child.metadata.name, namespace: child.metadata.namespace },
        'deleted child of a deleted mirror',
      );
    }
    this.forget(name);
  }

  private async desiredChildren(
    mirror: RegistryMirrorObject,
    input: MirrorInput,
  ): Promise<KubeObject[] | ReconcileOutcome> {
    const { namespace } = this.opts;
    const name = input.name;
    const secret =
      input.spec.credentialsSecret === undefined
        ? undefined
        : await this.opts.secrets.get(input.spec.credentialsSecret, name, input.spec.upstreamUrl);
    const creds = resolveCredentials({
      mirror: name,
      upstreamUrl: input.spec.upstreamUrl,
      credentialsSecret: input.spec.credentialsSecret,
      namespace,
      secret,
    });
    if (creds && !creds.ok) return { type: 'Stalled', reason: creds.reason, message: creds.message };
    const s3 = input.spec.objectStorage?.s3;
    const s3Secret = s3?.credentialsSecret;
    const bucketHost = s3 ? objectStorageEndpoint(s3) : '';
    const bucketCreds = resolveObjectStorageCredentials({
      mirror: name,
      secretName: s3Secret,
      endpoint: bucketHost,
      namespace,
      secret: s3Secret === undefined ? undefined : await this.opts.secrets.get(s3Secret, name, bucketHost),
    });
    if (bucketCreds && !bucketCreds.ok)
      return { type: 'Stalled', reason: bucketCreds.reason, message: bucketCreds.message };
    // One pod-template annotation for both: a change of either Secret rolls the cache pods.
    const secretsHash = [creds?.hash, bucketCreds?.hash].filter((h) => h !== undefined).join('.');
    const effective: MirrorInput = creds
      ? { ...input, spec: { ...input.spec, credentialsSecret: creds.secretName } }
      : input;
    let objects: KubeObject[];
    try {
      objects = synthesizeMirror(effective, {
        namespace,
        ...(this.opts.clusterDomain ? { clusterDomain: this.opts.clusterDomain } : {}),
        ...(this.opts.nodeRuntime ? { nodeRuntime: this.opts.nodeRuntime } : {}),
        ...(this.opts.nodeAgentImage ? { nodeAgentImage: this.opts.nodeAgentImage } : {}),
        ...(this.opts.fillImage ? { fillImage: this.opts.fillImage } : {}),
        ...(secretsHash ? { credentialsHash: secretsHash } : {}),
      });
    } catch (err) {
      if (err instanceof SpecError) return { type: 'Stalled', reason: 'InvalidSpec', message: specMessage(err) };
      throw err;
    }
    if (creds?.derived) objects = [creds.derived, ...objects];
    const ownerReferences = [
      {
        apiVersion: MIRROR_API_VERSION,
        kind: KIND,
        name,
        uid: mirror.metadata?.uid ?? '',
        controller: true,
        blockOwnerDeletion: true,
      },
    ];
    return objects.map((o) =>
      withContentHash({ ...o, metadata: { ...o.metadata, namespace, ownerReferences } }, creds?.hmacKey),
    );
  }

  private async converge(mirror: RegistryMirrorObject, log: Logger): Promise<ReconcileOutcome> {
    const name = mirrorName(mirror);
    const { client, namespace, metrics } = this.opts;
    let input: MirrorInput;
    try {
      input = parseMirrorResource(mirror, `cluster:registrymirror/${name}`);
    } catch (err) {
      if (err instanceof SpecError) return { type: 'Stalled', reason: 'InvalidSpec', message: specMessage(err) };
      throw err;
    }
    const policy = this.opts.policy?.();
    const broken = ALLOWLISTS.filter(
      (list) => policy?.broken[list] !== undefined && governedField(input.spec, list) !== undefined,
    );
    if (broken.length > 0) {
      // Fail closed: a list with a typo admits nothing it governs, so a typo never opens the gate.
      return {
        type: 'Stalled',
        reason: 'InvalidAllowlist',
        message: `${broken.map((list) => policy?.broken[list]).join('; ')}${BROKEN_LIST_TAIL}`,
      };
    }
    const refused = policyProblems(input, policy?.lists);
    if (refused.length > 0) {
      return {
        type: 'Stalled',
        reason: 'NotAllowed',
        message: `${refused.map((p) => p.message).join('; ')}. Change the RegistryMirror, or ask the platform team to extend the allowlist (ConfigMap ${this.opts.namespace}/${ALLOWLIST_NAME}).`,
      };
    }
    const noFillImage = fillImageProblem(input, this.opts.fillImage, CONTROLLER_FILL_IMAGE_SETTINGS);
    if (noFillImage) return { type: 'Stalled', reason: 'NoFillImage', message: noFillImage.message };
    const conflict = hostConflictOf(name, this.opts.mirrors.list());
    if (conflict) {
      return {
        type: 'Stalled',
        reason: 'HostConflict',
        message: `${conflict.field} configures node host ${conflict.host}, which the older mirror '${conflict.other}' already configures; two mirrors may not configure the same registry host. Delete one of them or change its ${conflict.field}.`,
      };
    }
    const collision = nameCollisionOf(name, this.opts.mirrors.list());
    if (collision) {
      return {
        type: 'Stalled',
        reason: 'NameCollision',
        message: `Its ${collision.object} would be the same object as the older mirror '${collision.other}'s; two mirrors may not create the same object. Delete one of them and recreate it under another name.`,
      };
    }
    const all = await this.desiredChildren(mirror, input);
    if (!Array.isArray(all)) return all;

    const live = [...this.opts.children.of(name)];
    // Kinds without an informer (none today: every child kind is watched): read them, so the
    // content-hash check still applies.
    for (const d of all) {
      if (this.opts.watchedKinds.has(d.kind)) continue;
      const obj = await client.read(d);
      if (obj) live.push(obj as LiveMeta);
    }
    // Taking over the original operator's objects holds some children back until it is safe.
    let step: TakeoverStep;
    try {
      step = await this.takeover.step(mirror, all, live, log);
    } catch (err) {
      if (errorStatus(err) !== 403) throw err;
      return {
        type: 'Stalled',
        reason: TAKEOVER_FORBIDDEN,
        message:
          `Taking over from mirror-operator needs to delete its pods and claims in namespace ${namespace}, and the controller may not (${describeError(err)}). ` +
          'Apply `mirror-synth controller-manifests --takeover`, which grants pod and persistentvolumeclaim delete with --takeover; the takeover resumes where it stopped.',
      };
    }
    if (step.outcome) return step.outcome;
    const desired = step.desired;
    const plan = planChildren({ mirror: name, desired, live, applied: (k) => this.applied.get(`${name}|${k}`) });
    // Applied with force: only children carrying this mirror's labels (all a child informer
    // shows). An object of a child's name that was read, not watched, may be anyone's.
    const ours = new Set(live.filter((l) => ChildIndex.mirrorOf(l) === name).map(childKey));
    // Never over another mirror's child (whatever its labels say now).
    const taken = this.takenByAnotherMirror(name, plan.apply, live);
    if (taken) return taken;

    // Children of one kind go together (two ConfigMaps, two Services); kinds in apply order.
    for (const group of byKind(plan.apply)) {
      const outcomes = await Promise.all(group.map((child) => this.applyChild(mirror, child, ours, log)));
      const failed = outcomes.find((o) => o !== undefined);
      if (failed) return failed;
    }
    for (const child of plan.prune) {
      const where = { kind: child.kind, name: child.metadata.name, namespace: child.metadata.namespace };
      try {
        await client.delete(child);
        this.applied.delete(`${name}|${childKey(child)}`);
        log.info(where, 'pruned');
      } catch (err) {
        metrics.errorsTotal.inc({ type: 'prune' });
        log.warn({ ...where, err: describeError(err) }, 'prune failed');
        return {
          type: 'Retrying',
          reason: 'PruneFailed',
          message: `Deleting ${child.kind} ${child.metadata.namespace}/${child.metadata.name} failed: ${describeError(err)}.`,
        };
      }
    }
    const applied = {
      type: 'Applied' as const,
      applied: plan.apply.length,
      unchanged: plan.unchanged.length,
      pruned: plan.prune.length,
      namespace,
    };
    const waiting = step.waiting ?? (await this.waitingFor(name, all, log));
    if (waiting) return { ...applied, waiting, ...(step.recheckMs ? { recheckMs: step.recheckMs } : {}) };
    const [cache, agent] = this.workloads(name, all);
    return { ...applied, serving: servingMessage(cache, agent) };
  }

  /**
   * The outcome when a child to apply is an object another RegistryMirror controls: a Stalled
   * NameCollision while that mirror exists, a retry while its children wait for the garbage
   * collector; else undefined.
   */
  private takenByAnotherMirror(
    name: string,
    apply: readonly KubeObject[],
    live: readonly LiveMeta[],
  ): ReconcileOutcome | undefined {
    const liveByKey = new Map(live.map((l) => [childKey(l), l]));
    for (const child of apply) {
      const key = childKey(child);
      const existing = liveByKey.get(key) ?? this.opts.children.get(key);
      const owner = existing && controllingMirror(existing);
      if (owner === undefined || owner === name) continue;
      const what = `${child.kind} ${this.opts.namespace}/${child.metadata.name}`;
      if (this.opts.mirrors.get(owner)) {
        return {
          type: 'Stalled',
          reason: 'NameCollision',
          message: `${what} belongs to mirror '${owner}' (its controlling ownerReference); two mirrors may not create the same object. Delete one of them and recreate it under another name.`,
        };
      }
      return {
        type: 'Retrying',
        reason: 'ApplyFailed',
        message: `${what} still belongs to the deleted mirror '${owner}'; waiting for the garbage collector to remove it.`,
      };
    }
    return undefined;
  }

  /** Apply one child; an outcome when it failed, else undefined. */
  private async applyChild(
    mirror: RegistryMirrorObject,
    child: KubeObject,
    ours: ReadonlySet<string>,
    log: Logger,
  ): Promise<ReconcileOutcome | undefined> {
    const name = mirrorName(mirror);
    const { client, namespace, metrics } = this.opts;
    const where = { kind: child.kind, name: child.metadata.name, namespace };
    const key = `${name}|${childKey(child)}`;
    const hash = child.metadata.annotations?.[CONTENT_HASH_ANNOTATION] ?? '';
    // The watch may deliver the change before the response arrives: it is ours already.
    this.applied.set(key, { hash, pending: true });
    try {
      // A child the controller has not seen as its own is applied without force: if someone
      // else made an object of that name, the API server answers 409 and nothing is repointed.
      const result = await client.apply(child, ours.has(childKey(child)));
      const generation = GENERATION_KINDS.has(child.kind) ? result.metadata?.generation : undefined;
      this.applied.set(key, {
        hash,
        resourceVersion: result.metadata?.resourceVersion,
        ...(generation !== undefined ? { generation } : {}),
      });
      log.info(where, 'applied');
    } catch (err) {
      this.applied.delete(key);
      metrics.errorsTotal.inc({ type: 'apply' });
      log.warn({ ...where, err: describeError(err) }, 'apply failed');
      if (errorStatus(err) === 409 && !ours.has(childKey(child))) {
        const legacy = await this.takeover.claim(mirror, child, log);
        if (legacy) return legacy;
        return {
          type: 'Stalled',
          reason: 'ForeignObject',
          message:
            `${child.kind} ${namespace}/${child.metadata.name} exists and was not created by mirror-synth ` +
            `(${describeError(err)}). mirror-synth does not take over objects it did not create: ` +
            `delete it (kubectl -n ${namespace} delete ${child.kind.toLowerCase()} ${child.metadata.name}) or rename the RegistryMirror.`,
        };
      }
      const message = `Applying ${child.kind} ${namespace}/${child.metadata.name} failed: ${describeError(err)}.`;
      if (isTransient(err)) return { type: 'Retrying', reason: 'ApplyFailed', message };
      const hint =
        errorStatus(err) === 403
          ? "Check the controller's RBAC (mirror-synth controller-manifests)."
          : errorStatus(err) === 422
            ? 'The API server refused the object; fields such as a StatefulSet selector cannot change in place: delete the object and the controller recreates it.'
            : 'Fix the RegistryMirror spec.';
      return { type: 'Stalled', reason: 'ApplyRejected', message: `${message} ${hint}` };
    }
    return undefined;
  }

  /** The cache's and the node agent's status as the caches hold it (at least at the generation last applied). */
  private workloads(
    name: string,
    desired: readonly KubeObject[],
  ): [WorkloadStatus | undefined, WorkloadStatus | undefined] {
    const live = new Map(this.opts.children.of(name).map((c) => [childKey(c), c]));
    const find = (kind: 'StatefulSet' | 'DaemonSet'): WorkloadStatus | undefined => {
      const d = desired.find((o) => o.kind === kind);
      if (!d) return undefined;
      const w = live.get(childKey(d))?.workload;
      const applied = this.applied.get(`${name}|${childKey(d)}`)?.generation;
      if (w === undefined && applied !== undefined) {
        // Just created: the cache has not seen it yet, and no controller has observed it.
        const desired = kind === 'StatefulSet' ? ((d.spec as { replicas?: number }).replicas ?? 1) : 0;
        return { kind, generation: applied, observedGeneration: 0, desired, ready: 0, updated: 0 };
      }
      return w && applied !== undefined && applied > w.generation ? { ...w, generation: applied } : w;
    };
    return [find('StatefulSet'), find('DaemonSet')];
  }

  /** Why the mirror does not serve yet: its cache or node agent pods, with a stuck container's reason when there is one. */
  private async waitingFor(name: string, desired: readonly KubeObject[], log: Logger): Promise<Waiting | undefined> {
    const [cache, agent] = this.workloads(name, desired);
    const sts = desired.find((o) => o.kind === 'StatefulSet');
    const ds = desired.find((o) => o.kind === 'DaemonSet');
    const waiting =
      (sts && workloadWaiting(sts.metadata.name, cache, 'StatefulSet')) ??
      (ds && workloadWaiting(ds.metadata.name, agent, 'DaemonSet'));
    if (!waiting) return undefined;
    // Pods that will not start: say why, in the kubelet's words. Only once the workload's
    // controller has observed it (before that no pod can have a reason), and not for a
    // workload that was just created.
    const w = waiting.reason === 'CacheNotReady' ? cache : agent;
    if (w === undefined || w.observedGeneration < w.generation) return waiting;
    const selector = (waiting.reason === 'CacheNotReady' ? sts : ds)?.spec as
      { selector?: { matchLabels?: Record<string, string> } } | undefined;
    const labels = selector?.selector?.matchLabels;
    if (!labels) return waiting;
    try {
      const pods = await this.opts.client.listPods(
        this.opts.namespace,
        Object.entries(labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
      );
      const problem = podProblem(pods);
      return problem ? podProblemWaiting(problem) : waiting;
    } catch (err) {
      log.debug({ err: describeError(err) }, 'could not list pods');
      return waiting;
    }
  }

  /** The status the controller should compare against: the cache's, unless the cache has not caught up with our last write. */
  private previousStatus(mirror: RegistryMirrorObject): MirrorStatus | undefined {
    const cached = mirror.status;
    const memo = this.statusMemo.get(mirrorName(mirror));
    if (!memo || memo.uid !== mirror.metadata?.uid) return cached;
    if (memo.resourceVersion === mirror.metadata?.resourceVersion) return cached;
    return canonicalJson(cached ?? null) === memo.before ? memo.written : cached;
  }

  private async report(mirror: RegistryMirrorObject, outcome: ReconcileOutcome, log: Logger): Promise<void> {
    const name = mirrorName(mirror);
    const generation = mirror.metadata?.generation ?? 0;
    const previous = this.previousStatus(mirror);
    const status = nextStatus(previous, outcome, generation, this.now());
    for (const c of status.conditions ?? []) {
      this.opts.metrics.mirrorCondition.set({ mirror: name, condition: c.type }, c.status === 'True' ? 1 : 0);
    }
    if (outcome.type !== 'Applied') {
      log.warn(
        { reason: outcome.reason, message: outcome.message },
        outcome.type === 'Stalled' ? 'stalled' : 'will retry',
      );
    }
    if (statusChanged(previous, status)) {
      try {
        const rv = await this.opts.client.writeMirrorStatus(name, status);
        this.statusMemo.set(name, {
          uid: mirror.metadata?.uid ?? '',
          before: canonicalJson(mirror.status ?? null),
          written: status,
          resourceVersion: rv,
        });
      } catch (err) {
        this.opts.metrics.errorsTotal.inc({ type: 'status' });
        // Deleted meanwhile: nothing to report on.
        if (errorStatus(err) === 404) return;
        throw err;
      }
    }
    const event = eventFor(previous, outcome);
    if (event) {
      // Events are for people: recorded without holding the worker up.
      this.opts.client.recordEvent(mirror, event).catch((err: unknown) => {
        this.opts.metrics.errorsTotal.inc({ type: 'event' });
        log.warn({ err: describeError(err) }, 'could not record an Event');
      });
    }
  }
}
