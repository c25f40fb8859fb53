/**
 * The images mirror-synth deploys, pinned. The registry's version is the one the end-to-end
 * tests build from tools/registry/go.mod (a test keeps the two equal): 3.1.2 fixes
 * CVE-2026-85747 for pull-through caches. The front is nginx's unprivileged image (it runs as
 * any non-root user); the tests run Debian's nginx with the same nginx.conf. The front's
 * metrics come from mtail, the release the tests build from tools/mtail; the volume exporter
 * is the Prometheus node_exporter, the version they build from tools/node-exporter/go.mod
 * (tests keep each pair equal). The references themselves are api/names.ts's IMAGES.
 */
import { DEFAULT_NODE_AGENT_IMAGE, type ImageRole, IMAGES, imageTag } from '../api/names.js';
import type { MirrorSpec } from '../api/schema.js';
import { withRegistry } from './upstream.js';

export const REGISTRY_IMAGE = IMAGES.registry;
export const NODE_EXPORTER_IMAGE = IMAGES.volumeExporter;
export const FRONT_IMAGE = IMAGES.front;
export const FRONT_METRICS_IMAGE = IMAGES.frontMetrics;
export const NODE_AGENT_IMAGE = DEFAULT_NODE_AGENT_IMAGE;

/**
 * The image a container runs: its pinned tag, from `spec.imageRegistry` if set, and pinned by
 * digest too with `spec.imageDigests.<role>` (`<tag>@sha256:...`; validation checked the tag).
 */
export function imageFor(role: ImageRole, spec: Pick<MirrorSpec, 'imageRegistry' | 'imageDigests'>): string {
  const ref = withRegistry(IMAGES[role], spec.imageRegistry);
  const pinned = spec.imageDigests?.[role];
  return pinned === undefined ? ref : `${ref}${pinned.slice(imageTag(ref).length)}`;
}
