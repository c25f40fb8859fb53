/**
 * Read RegistryMirror custom resources from a cluster, for `mirror-synth synth --from-cluster`.
 * Every object is validated with the same schema as mirrors/*.yaml.
 */
import { CustomObjectsApi } from '@kubernetes/client-node';

import { ClusterError, SpecError, type SpecProblem } from '../api/errors.js';
import { describeError, errorStatus } from '../api/kube-errors.js';
import { compareStrings } from '../api/kube-object.js';
import { API_GROUP, API_VERSION, PLURAL } from '../api/names.js';
import { olderFirst } from '../api/seniority.js';
import { checkHostConflicts, checkNameCollisions, type MirrorInput, parseMirrorResource } from '../api/validate.js';
import { loadKubeConfig } from './kubeconfig.js';

export interface ClusterSourceOptions {
  /** Path of a kubeconfig. @default - KUBECONFIG, ~/.kube/config, or the in-cluster service account */
  readonly kubeconfig?: string;
}

/** Turn an API failure into a message a person can act on. */
export function clusterErrorFor(err: unknown, server: string, what: string): ClusterError {
  const status = errorStatus(err);
  if (status === 404) {
    return new ClusterError(
      `the RegistryMirror CRD (${PLURAL}.${API_GROUP}) is not installed in the cluster at ${server}; ` +
        'install it with `mirror-synth crd | kubectl apply -f -`',
    );
  }
  if (status === 401)
    return new ClusterError(`the cluster at ${server} rejected the credentials in the kubeconfig (401) while ${what}`);
  if (status === 403)
    return new ClusterError(`not allowed to ${what} in the cluster at ${server} (403): ${describeError(err)}`);
  if (status === undefined)
    return new ClusterError(`cannot reach the Kubernetes API server at ${server} while ${what}: ${describeError(err)}`);
  return new ClusterError(`the cluster at ${server} failed while ${what}: ${describeError(err)}`);
}

/** Every RegistryMirror in the cluster, validated. Throws ClusterError or SpecError (with every problem). */
export async function listClusterMirrors(opts: ClusterSourceOptions = {}): Promise<MirrorInput[]> {
  const kc = loadKubeConfig(opts.kubeconfig);
  const server = kc.getCurrentCluster()?.server ?? '(unknown)';
  const api = kc.makeApiClient(CustomObjectsApi);
  const items: unknown[] = [];
  let token: string | undefined;
  do {
    let page: { items?: unknown[]; metadata?: { _continue?: string; continue?: string } };
    try {
      page = (await api.listClusterCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        plural: PLURAL,
        limit: 500,
        ...(token ? { _continue: token } : {}),
      })) as typeof page;
    } catch (err) {
      throw clusterErrorFor(err, server, `listing ${PLURAL}.${API_GROUP}`);
    }
    items.push(...(page.items ?? []));
    token = page.metadata?.continue ?? page.metadata?._continue;
  } while (token);

  const problems: SpecProblem[] = [];
  const mirrors: MirrorInput[] = [];
  for (const item of items) {
    const name = (item as { metadata?: { name?: string } }).metadata?.name ?? '(unnamed)';
    try {
      mirrors.push(parseMirrorResource(item, `cluster:registrymirror/${name}`));
    } catch (err) {
      if (err instanceof SpecError) problems.push(...err.problems);
      else throw err;
    }
  }
  if (problems.length > 0) throw new SpecError(problems);
  checkClusterClaims(mirrors);
  return mirrors.sort((a, b) => compareStrings(a.name, b.name));
}

/**
 * The older of two mirrors claiming one node host (or one child's name) keeps it, in the
 * controller's order (api/seniority.ts): throws SpecError naming the younger.
 */
export function checkClusterClaims(mirrors: readonly MirrorInput[]): void {
  const oldestFirst = [...mirrors].sort(olderFirst);
  checkNameCollisions(oldestFirst);
  checkHostConflicts(oldestFirst);
}
