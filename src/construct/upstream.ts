/** Where the mirror's own images come from. */

/**
 * Rewrite a fully-qualified image reference (`docker.io/library/registry:3.1.1`) to come
 * from another registry (`harbor.example.com/hub` gives `harbor.example.com/hub/library/registry:3.1.1`).
 */
export function withRegistry(image: string, registry: string | undefined): string {
  if (registry === undefined) return image;
  const slash = image.indexOf('/');
  return `${registry.replace(/\/+$/, '')}/${image.slice(slash + 1)}`;
}
