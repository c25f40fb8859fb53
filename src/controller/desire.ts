/**
 * The desire stage of a reconcile: the mirror's children as the CLI synthesizes them, with the
 * credentials its Secrets hold, each owned by the mirror and carrying its content hash.
 */
import { SpecError } from '../api/errors.js';
import type { KubeObject } from '../api/kube-object.js';
import { KIND, MIRROR_API_VERSION } from '../api/names.js';
import type { MirrorInput } from '../api/validate.js';
import { type NodeRuntime } from '../construct/platform.js';
import { synthesizeMirror } from '../synth/chart.js';
import { objectStorageEndpoint, resolveCredentials, resolveObjectStorageCredentials } from './credentials.js';
import { withContentHash } from './hash.js';
import type { RegistryMirrorObject } from './kube.js';
import { specMessage } from './read.js';
import type { ReferencedSecrets } from './secrets.js';
import type { ReconcileOutcome } from './status.js';

/** What synthesizing a mirror's children takes besides its spec. */
export interface DesireOptions {
  readonly namespace: string;
  /** Namespace of the node agents. @default `<namespace>-node` */
  readonly nodeAgentNamespace?: string;
  readonly clusterDomain?: string;
  readonly nodeRuntime?: NodeRuntime;
  readonly nodeAgentImage?: string;
  /** The image of the streaming fill: the controller's own. @default - none: `spec.fill: streaming` stalls with NoFillImage */
  readonly fillImage?: string;
  /** Referenced Secrets, with their data (the informer holds metadata only). */
  readonly secrets: ReferencedSecrets;
}

/** The mirror's children, or the outcome that stalls it (a Secret it may not use, a spec synth refuses). */
export async function desiredChildren(
  opts: DesireOptions,
  mirror: RegistryMirrorObject,
  input: MirrorInput,
): Promise<KubeObject[] | ReconcileOutcome> {
  const { namespace } = opts;
  const name = input.name;
  const secret =
    input.spec.credentialsSecret === undefined
      ? undefined
      : await opts.secrets.get(input.spec.credentialsSecret, name, input.spec.upstreamUrl);
  const creds = resolveCredentials({
    mirror: name,
    upstreamUrl: input.spec.upstreamUrl,
    credentialsSecret: input.spec.credentialsSecret,
    namespace,
    secret,
  });
  if (creds && !creds.ok) return { type: 'Stalled', reason: creds.reason, message: creds.message };
  const s3 = input.spec.objectStorage?.s3;
  const s3Secret = s3?.credentialsSecret;
  const bucketHost = s3 ? objectStorageEndpoint(s3) : '';
  const bucketCreds = resolveObjectStorageCredentials({
    mirror: name,
    secretName: s3Secret,
    endpoint: bucketHost,
    namespace,
    secret: s3Secret === undefined ? undefined : await opts.secrets.get(s3Secret, name, bucketHost),
  });
  if (bucketCreds && !bucketCreds.ok)
    return { type: 'Stalled', reason: bucketCreds.reason, message: bucketCreds.message };
  // One pod-template annotation for both: a change of either Secret rolls the cache pods.
  const secretsHash = [creds?.hash, bucketCreds?.hash].filter((h) => h !== undefined).join('.');
  const effective: MirrorInput = creds
    ? { ...input, spec: { ...input.spec, credentialsSecret: creds.secretName } }
    : input;
  let objects: KubeObject[];
  try {
    objects = synthesizeMirror(effective, {
      namespace,
      ...(opts.nodeAgentNamespace ? { nodeAgentNamespace: opts.nodeAgentNamespace } : {}),
      ...(opts.clusterDomain ? { clusterDomain: opts.clusterDomain } : {}),
      ...(opts.nodeRuntime ? { nodeRuntime: opts.nodeRuntime } : {}),
      ...(opts.nodeAgentImage ? { nodeAgentImage: opts.nodeAgentImage } : {}),
      ...(opts.fillImage ? { fillImage: opts.fillImage } : {}),
      ...(secretsHash ? { credentialsHash: secretsHash } : {}),
    });
  } catch (err) {
    if (err instanceof SpecError) return { type: 'Stalled', reason: 'InvalidSpec', message: specMessage(err) };
    throw err;
  }
  if (creds?.derived) objects = [creds.derived, ...objects];
  const ownerReferences = [
    {
      apiVersion: MIRROR_API_VERSION,
      kind: KIND,
      name,
      uid: mirror.metadata?.uid ?? '',
      controller: true,
      blockOwnerDeletion: true,
    },
  ];
  return objects.map((o) =>
    withContentHash(
      { ...o, metadata: { ...o.metadata, namespace: o.metadata.namespace ?? namespace, ownerReferences } },
      creds?.hmacKey,
    ),
  );
}
