/**
 * Which registry hosts a mirror spec claims on the nodes, and where its upstream's API lives.
 * Pure rules over `upstreamUrl` and `masqueradeUrl`, shared by validation (two mirrors may
 * never configure the same node host), the construct and the controller.
 */
import type { SpecProblem } from './errors.js';

/** Docker Hub's names, as users write them, and where its registry API really lives. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
export const DOCKER_HUB_API = 'registry-1.docker.io';

/** The URL Distribution's proxy and containerd's `server` use for an upstreamUrl. */
export function upstreamServerUrl(upstreamUrl: string): string {
  return `https://${DOCKER_HUB_ALIASES.has(upstreamUrl) ? DOCKER_HUB_API : upstreamUrl}`;
}

/**
 * The certs.d directory name containerd looks up for images of this upstream:
 * the host as it appears in image references (`docker.io` for Docker Hub).
 */
export function containerdHost(upstreamUrl: string): string {
  return DOCKER_HUB_ALIASES.has(upstreamUrl) ? 'docker.io' : upstreamUrl;
}

/** A spec's hosts as the fields that claim them. */
interface HostClaim {
  readonly host: string;
  readonly field: 'spec.upstreamUrl' | 'spec.masqueradeUrl';
  readonly value: string;
}

/** Registry hosts a spec sends through its mirror, as image references name them: upstream first, then masqueradeUrl. */
export function mirrorHosts(spec: { readonly upstreamUrl: string; readonly masqueradeUrl?: string }): string[] {
  return hostClaims(spec).map((c) => c.host);
}

function hostClaims(spec: { readonly upstreamUrl: string; readonly masqueradeUrl?: string }): HostClaim[] {
  const claims: HostClaim[] = [
    { host: containerdHost(spec.upstreamUrl), field: 'spec.upstreamUrl', value: spec.upstreamUrl },
  ];
  if (spec.masqueradeUrl !== undefined) {
    claims.push({ host: containerdHost(spec.masqueradeUrl), field: 'spec.masqueradeUrl', value: spec.masqueradeUrl });
  }
  return claims;
}

/** What findHostConflicts needs of a mirror. */
export interface HostedMirror {
  readonly name: string;
  readonly source: string;
  readonly spec: { readonly upstreamUrl: string; readonly masqueradeUrl?: string };
}

/** A later mirror claiming a node host an earlier one already configures. */
export interface HostConflict extends SpecProblem {
  readonly mirror: string;
  readonly field: string;
  /** The mirror that configures the host first. */
  readonly other: string;
  readonly host: string;
}

/**
 * Node hosts claimed by two mirrors. Their node agents would overwrite and delete each other's
 * files, so each host may be configured by one mirror only: the first in the given order keeps
 * it (pass mirrors oldest first), every later claim is a conflict naming the first.
 */
export function findHostConflicts(mirrors: readonly HostedMirror[]): HostConflict[] {
  const owner = new Map<string, HostedMirror>();
  const conflicts: HostConflict[] = [];
  for (const m of mirrors) {
    for (const claim of hostClaims(m.spec)) {
      const first = owner.get(claim.host);
      if (first === undefined) {
        owner.set(claim.host, m);
      } else if (first !== m) {
        const same = claim.value === claim.host ? `'${claim.value}'` : `'${claim.value}' (node host ${claim.host})`;
        conflicts.push({
          source: m.source,
          mirror: m.name,
          field: claim.field,
          other: first.name,
          host: claim.host,
          message: `${claim.field} ${same} is already configured on the nodes by mirror '${first.name}' (${first.source}); two mirrors may not configure the same registry host`,
        });
      }
    }
  }
  return conflicts;
}
