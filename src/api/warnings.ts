/**
 * What a valid spec may still get wrong, said at synth time (synth, validate, check) rather than
 * refused: refusing would break specs the original mirror-operator accepted.
 *
 * A mirror with `credentialsSecret` and no `spec.networkPolicy.nodeCIDRs` gets the default node
 * ranges (all of RFC 1918 and RFC 6598's shared range), which hold the pod addresses of almost
 * every cluster: wherever the CNI plugin matches pod addresses by `ipBlock` (Calico does), every
 * pod may pull the upstream's private images through the mirror, with the mirror's credentials.
 */
import { DEFAULT_NODE_CIDRS } from './names.js';
import type { MirrorInput } from './validate.js';

/** One line per problem, naming the file, the mirror and the field, as spec errors do. */
export function specWarnings(mirrors: readonly MirrorInput[]): string[] {
  const warnings: string[] = [];
  for (const m of mirrors) {
    if (m.spec.credentialsSecret !== undefined && m.spec.networkPolicy?.nodeCIDRs === undefined) {
      warnings.push(
        `${m.source}: mirror '${m.name}': spec.networkPolicy.nodeCIDRs is not set, so the NetworkPolicy admits ` +
          `port 5000 from ${DEFAULT_NODE_CIDRS.join(', ')}, where pod addresses usually are: any pod may pull ` +
          `${m.spec.upstreamUrl}'s private images with Secret '${m.spec.credentialsSecret}'. ` +
          `Set it to the nodes' subnets (kubectl get nodes -o wide: INTERNAL-IP)`,
      );
    }
  }
  return warnings;
}
