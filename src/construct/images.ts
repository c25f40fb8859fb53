/**
 * The images mirror-synth deploys, pinned. The registry's version is the one the end-to-end
 * tests build from tools/registry/go.mod (a test keeps the two equal): 3.1.2 fixes
 * CVE-2026-85747 for pull-through caches. The front is nginx's unprivileged image (it runs as
 * any non-root user); the tests run Debian's nginx with the same nginx.conf. The front's
 * metrics come from mtail, the release the tests build from tools/mtail; the volume exporter
 * is the Prometheus node_exporter, the version they build from tools/node-exporter/go.mod
 * (tests keep each pair equal). The references themselves are api/images.ts's IMAGES. The
 * streaming fill's image is not one of them: the platform names it (platform.ts FILL_IMAGE_ENV).
 */
import { SpecError, type SpecProblem } from '../api/errors.js';
import { type ImageRole, IMAGES, imageTag } from '../api/images.js';
import { DEFAULT_FILL } from '../api/names.js';
import type { MirrorSpec } from '../api/schema.js';
import type { MirrorInput } from '../api/validate.js';
import { DEFAULT_NODE_AGENT_IMAGE } from './platform.js';
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

/** How synth is told the fill image, for messages. */
export const FILL_IMAGE_SETTINGS = '--fill-image, FILL_IMAGE or fillImage in cdk8s.yaml';

/**
 * A mirror with `spec.fill: streaming` when no fill image is set: the problem, naming the file, the
 * mirror and the field, and `settings`, how to set it. `undefined` when the mirror needs none or
 * has one.
 */
export function fillImageProblem(
  mirror: Pick<MirrorInput, 'name' | 'spec' | 'source'>,
  fillImage: string | undefined,
  settings = FILL_IMAGE_SETTINGS,
): SpecProblem | undefined {
  if (fillImage !== undefined) return undefined;
  const streaming = (mirror.spec.fill ?? DEFAULT_FILL) === 'streaming';
  // spec.cache.pinned runs `mirror-synth warm`, from the same image
  const pinned = (mirror.spec.cache?.pinned?.length ?? 0) > 0;
  if (!streaming && !pinned) {
    // The size bound's keeper runs the same image (construct/keeper.ts); without it, a mirror that
    // sets no bound keeps Distribution's TTL alone, and one that sets a bound is refused.
    if (mirror.spec.cache?.maxSize === undefined) return undefined;
    return {
      source: mirror.source,
      mirror: mirror.name,
      field: 'spec.cache.maxSize',
      message:
        'spec.cache.maxSize is kept by `mirror-synth keeper` from the mirror-synth image, and no image is set for it: ' +
        'mirror-synth publishes none to default to. Build it (npm run build:image), push it to a registry the nodes pull from, ' +
        `and name it with ${settings}; or remove spec.cache.maxSize (the cache is then bounded by Distribution's 7-day TTL alone)`,
    };
  }
  return {
    source: mirror.source,
    mirror: mirror.name,
    field: streaming ? 'spec.fill' : 'spec.cache.pinned',
    message:
      (streaming
        ? 'spec.fill is streaming, which runs `mirror-synth fill`'
        : 'spec.cache.pinned is set, which runs `mirror-synth warm`') +
      ' from the mirror-synth image, and no image is set for it: ' +
      'mirror-synth publishes none to default to. Build it (npm run build:image), push it to a registry the nodes pull from, ' +
      `and name it with ${settings}; or ${streaming ? 'set spec.fill: whole' : 'leave spec.cache.pinned out'}`,
  };
}

/** Throws one SpecError naming every mirror with `spec.fill: streaming` when no fill image is set. */
export function checkFillImage(mirrors: readonly MirrorInput[], fillImage: string | undefined): void {
  const problems = mirrors.flatMap((m) => fillImageProblem(m, fillImage) ?? []);
  if (problems.length > 0) throw new SpecError(problems);
}
