/**
 * RegistryMirror status, derived by small pure functions from what one reconcile found.
 *
 * Conditions follow the Kubernetes API conventions (and kstatus): `Ready` says whether the
 * mirror serves: every child is applied as the spec asks AND the cache's ready replicas and the
 * node agent's ready pods reach what is desired, for the current generation. `Reconciling` is
 * True while the controller works towards that (waiting for pods, retrying after a transient
 * error); `Stalled` is True when it cannot make progress until a person changes something (the
 * spec, a Secret, a conflicting object). All three are always present, each with
 * `observedGeneration`, a PascalCase reason and an actionable message.
 */
import { compareStrings } from '../api/kube-object.js';
import type { MirrorCondition, MirrorStatus } from '../api/schema.js';
import type { Waiting } from './readiness.js';

/** Reasons for `Stalled=True`: each needs a person to change the spec or a Secret. */
export type StalledReason =
  | 'InvalidSpec'
  | 'CredentialsSecretNotFound'
  | 'CredentialsSecretInvalid'
  | 'CredentialsSecretNotOptedIn'
  | 'ObjectStorageSecretNotFound'
  | 'ObjectStorageSecretInvalid'
  | 'ObjectStorageSecretNotOptedIn'
  | 'NotAllowed'
  | 'InvalidAllowlist'
  | 'NoFillImage'
  | 'ApplyRejected'
  | 'HostConflict'
  | 'NameCollision'
  | 'ForeignObject'
  | 'TakeoverDisabled'
  | 'TakeoverForbidden';

/** What one reconcile of one mirror came to. */
export type ReconcileOutcome =
  | {
      readonly type: 'Applied';
      /** Children written by this reconcile (their content changed). */
      readonly applied: number;
      /** Children left alone because their content hash was unchanged. */
      readonly unchanged: number;
      /** Children deleted because the spec no longer asks for them. */
      readonly pruned: number;
      readonly namespace: string;
      /** Why the mirror does not serve yet; `undefined` when its pods are ready. */
      readonly waiting?: Waiting;
      /** How its workloads stand when it serves. */
      readonly serving?: string;
      /** Look again after this long while waiting. @default WAITING_RECHECK_MS */
      readonly recheckMs?: number;
    }
  | { readonly type: 'Stalled'; readonly reason: StalledReason; readonly message: string }
  | { readonly type: 'Retrying'; readonly reason: 'ApplyFailed' | 'PruneFailed'; readonly message: string };

/** Whether a reconcile stage ended the reconcile with an outcome instead of handing on what the next stage needs. */
export function isOutcome(x: object): x is ReconcileOutcome {
  return !Array.isArray(x) && typeof (x as { type?: unknown }).type === 'string';
}

export const CONDITION_TYPES = ['Ready', 'Reconciling', 'Stalled'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];
export type DesiredCondition = Omit<MirrorCondition, 'lastTransitionTime'> & { type: ConditionType };

/** Waiting reasons that are a container's trouble (the kubelet's words), worth a Warning Event. */
const STUCK_REASON = /BackOff$|^Err|Error$/;

const NOT_RETRYING =
  'The controller tries again when the RegistryMirror or its credentials Secret changes, and at each periodic resync (every 10 minutes by default).';

/** The three conditions an outcome implies, without transition times. */
export function desiredConditions(outcome: ReconcileOutcome, generation: number): DesiredCondition[] {
  const c = (type: ConditionType, status: 'True' | 'False', reason: string, message: string): DesiredCondition => ({
    type,
    status,
    observedGeneration: generation,
    reason,
    message,
  });
  switch (outcome.type) {
    case 'Applied': {
      const total = outcome.applied + outcome.unchanged;
      const applied = `All ${total} objects are applied in namespace ${outcome.namespace}.`;
      if (outcome.waiting) {
        const { reason, message } = outcome.waiting;
        return [
          c('Ready', 'False', reason, message),
          c('Reconciling', 'True', 'Progressing', `${applied} ${message}`),
          c('Stalled', 'False', 'Progressing', 'The controller is waiting for the pods; nothing needs a person yet.'),
        ];
      }
      const msg = outcome.serving ? `${outcome.serving} ${applied}` : applied;
      return [
        c('Ready', 'True', 'Serving', msg),
        c('Reconciling', 'False', 'Serving', msg),
        c('Stalled', 'False', 'Serving', msg),
      ];
    }
    case 'Stalled':
      return [
        c('Ready', 'False', outcome.reason, outcome.message),
        c('Reconciling', 'False', outcome.reason, NOT_RETRYING),
        c('Stalled', 'True', outcome.reason, outcome.message),
      ];
    case 'Retrying':
      return [
        c('Ready', 'False', outcome.reason, outcome.message),
        c('Reconciling', 'True', 'RetryingAfterError', `${outcome.message} Retrying with backoff.`),
        c('Stalled', 'False', 'RetryingAfterError', 'The error may be transient; the controller keeps retrying.'),
      ];
  }
}

/**
 * Keep `lastTransitionTime` of a condition whose status did not change; stamp `now` on the others.
 * Conditions of other types (set by someone else) are kept as they are.
 */
export function mergeConditions(
  previous: readonly MirrorCondition[] | undefined,
  desired: readonly DesiredCondition[],
  now: Date,
): MirrorCondition[] {
  const prev = new Map((previous ?? []).map((p) => [p.type, p]));
  const ours = new Set<string>(desired.map((d) => d.type));
  const out: MirrorCondition[] = desired.map((d) => {
    const p = prev.get(d.type);
    const lastTransitionTime =
      p !== undefined && p.status === d.status ? p.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    return { ...d, lastTransitionTime };
  });
  for (const p of previous ?? []) if (!ours.has(p.type)) out.push(p);
  return out;
}

/** The whole status after a reconcile. */
export function nextStatus(
  previous: MirrorStatus | undefined,
  outcome: ReconcileOutcome,
  generation: number,
  now: Date,
): MirrorStatus {
  return {
    observedGeneration: generation,
    conditions: mergeConditions(previous?.conditions, desiredConditions(outcome, generation), now),
  };
}

/** Whether writing `next` would change anything (so a steady-state resync writes no status). */
export function statusChanged(previous: MirrorStatus | undefined, next: MirrorStatus): boolean {
  const norm = (s: MirrorStatus | undefined): string =>
    JSON.stringify({
      observedGeneration: s?.observedGeneration ?? null,
      conditions: [...(s?.conditions ?? [])]
        .sort((a, b) => compareStrings(a.type, b.type))
        .map((c) => [c.type, c.status, c.observedGeneration ?? null, c.reason, c.message, c.lastTransitionTime]),
    });
  return norm(previous) !== norm(next);
}

/** A Kubernetes Event to record on the RegistryMirror. */
export interface MirrorEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

/**
 * The Event a reconcile deserves, if any: Normal when it wrote something, Warning when the
 * mirror newly fails (or fails differently). A steady state records nothing.
 */
export function eventFor(previous: MirrorStatus | undefined, outcome: ReconcileOutcome): MirrorEvent | undefined {
  const prevReady = previous?.conditions?.find((c) => c.type === 'Ready');
  switch (outcome.type) {
    case 'Applied': {
      const stuck = outcome.waiting && STUCK_REASON.test(outcome.waiting.reason) ? outcome.waiting : undefined;
      if (stuck && (prevReady?.reason !== stuck.reason || prevReady.message !== stuck.message)) {
        return { type: 'Warning', reason: stuck.reason, message: stuck.message };
      }
      if (outcome.applied === 0 && outcome.pruned === 0) {
        if (outcome.waiting === undefined && prevReady !== undefined && prevReady.status !== 'True') {
          return { type: 'Normal', reason: 'Serving', message: outcome.serving ?? 'The mirror serves.' };
        }
        return undefined;
      }
      const parts = [`applied ${outcome.applied}`, `unchanged ${outcome.unchanged}`];
      if (outcome.pruned > 0) parts.push(`pruned ${outcome.pruned}`);
      return {
        type: 'Normal',
        reason: 'Reconciled',
        message: `Objects in namespace ${outcome.namespace}: ${parts.join(', ')}.`,
      };
    }
    case 'Stalled':
    case 'Retrying':
      if (prevReady?.reason === outcome.reason && prevReady.message === outcome.message) return undefined;
      return { type: 'Warning', reason: outcome.reason, message: outcome.message };
  }
}
