/**
 * Pure helpers about registry hosts and images.
 */

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

/**
 * Rewrite a fully-qualified image reference (`docker.io/library/registry:3.1.1`) to come
 * from another registry (`harbor.example.com/hub` gives `harbor.example.com/hub/library/registry:3.1.1`).
 */
export function withRegistry(image: string, registry: string | undefined): string {
  if (registry === undefined) return image;
  const slash = image.indexOf('/');
  return `${registry.replace(/\/+$/, '')}/${image.slice(slash + 1)}`;
}
