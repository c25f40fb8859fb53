/**
 * The images mirror-synth deploys and the grammar of image references. In api/ because the CRD
 * names the tags: `spec.imageDigests.<role>` must pin the tag deployed (schema.ts, policy.ts).
 * Imports nothing.
 */

/**
 * The images mirror-synth deploys, by role, pinned by tag (see construct/images.ts for why each
 * version). Tags, not digests, by default: the build machine cannot reach a registry to check a
 * digest, and a wrong one breaks every pull. `spec.imageDigests.<role>` pins one by digest.
 */
export const IMAGES = {
  registry: 'docker.io/library/registry:3.1.2',
  front: 'docker.io/nginxinc/nginx-unprivileged:1.30.4-alpine',
  frontMetrics: 'ghcr.io/google/mtail:3.0.9',
  volumeExporter: 'quay.io/prometheus/node-exporter:v1.12.1',
} as const;

/** The roles of IMAGES: what `spec.imageRegistry` and `spec.imageDigests.<role>` may change. */
export type ImageRole = keyof typeof IMAGES;

/** An image digest, `sha256:` and 64 lower-case hex digits (`spec.imageDigests.<role>` is `<tag>@` and one). */
export const IMAGE_DIGEST = 'sha256:[0-9a-f]{64}';
export const IMAGE_DIGEST_PATTERN = `^${IMAGE_DIGEST}$`;
const HOST_LABEL = '[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?';
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';

/**
 * An image reference as a platform setting names one (`--fill-image`): `[host[:port]/]path[:tag][@sha256:...]`,
 * the grammar of distribution/reference. Whether it has a tag or a digest is checked apart.
 */
export const IMAGE_REFERENCE_PATTERN =
  `^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*(?::[0-9]+)?/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*` +
  `(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@${IMAGE_DIGEST})?$`;

/** The tag of an image reference `host/path:tag`. */
export function imageTag(ref: string): string {
  return ref.slice(ref.lastIndexOf(':') + 1);
}
/** The parts of IMAGE_REFERENCE_PATTERN a chart value names apart: `[host[:port]/]path`, a tag. */
export const IMAGE_REPOSITORY_PATTERN = `^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*(?::[0-9]+)?/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`;
export const IMAGE_TAG_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$';
