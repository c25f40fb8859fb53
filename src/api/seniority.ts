/**
 * "The older mirror wins": when two RegistryMirrors configure one node host or would create one
 * object, the older keeps it and the younger stalls (HostConflict, NameCollision). One order, used
 * by `synth --from-cluster` (sources/cluster.ts) and by the controller, so both pick the same winner.
 */
import { compareStrings } from './kube-object.js';

/** Stalled reasons of a mirror that lost a node host or a child's name to an older mirror. */
export const CLAIM_REASONS: readonly string[] = ['HostConflict', 'NameCollision'];

/** What decides which of two mirrors is older. */
export interface Seniority {
  readonly name: string;
  /** metadata.creationTimestamp (RFC 3339, whole seconds); none for a mirror read from a file. */
  readonly creationTimestamp?: string;
  /** Whether it already holds its node hosts and its children's names (see holdsClaims). */
  readonly holdsClaims?: boolean;
}

/**
 * Whether a mirror has been reconciled and holds its node hosts and its children's names: its
 * status has an observedGeneration and it is not stalled for a host conflict or a name collision.
 */
export function holdsClaims(status: unknown): boolean {
  const s = status as
    | { observedGeneration?: unknown; conditions?: readonly { type?: string; status?: string; reason?: string }[] }
    | undefined;
  const stalled = s?.conditions?.find((c) => c.type === 'Stalled');
  return (
    s?.observedGeneration !== undefined && !(stalled?.status === 'True' && CLAIM_REASONS.includes(stalled.reason ?? ''))
  );
}

/**
 * Mirrors oldest first: the order in which they keep node hosts and names. creationTimestamp has
 * whole seconds, so within one second a mirror already holding its claims goes first (a serving
 * mirror never loses its hosts to one created in the same second), then the name decides.
 */
export function olderFirst(a: Seniority, b: Seniority): number {
  return (
    compareStrings(a.creationTimestamp ?? '', b.creationTimestamp ?? '') ||
    Number(b.holdsClaims ?? false) - Number(a.holdsClaims ?? false) ||
    compareStrings(a.name, b.name)
  );
}
