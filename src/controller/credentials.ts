/**
 * From a mirror's `credentialsSecret` to what the registry pods read (pure).
 *
 * The registry reads keys `username` and `password` of a Secret in the output namespace.
 * A `kubernetes.io/dockerconfigjson` Secret is accepted too: the controller derives a Secret
 * `registry-mirror-<name>-credentials` holding the username and password of the upstream
 * host's `auths` entry, owned by the RegistryMirror, and points the registry at it.
 * A Secret is used only by the mirrors its annotation `mirror-synth.k8s.osp.tech/mirrors` lists,
 * each with the host it may be sent to (`dockerhub@docker.io`): it opts in to that mirror and that
 * host, so naming a Secret in a RegistryMirror does not send it upstream on its own, and whoever
 * may change the mirror's upstreamUrl (or recreate it) cannot send it elsewhere.
 * No message here ever contains a secret value.
 */
import { mirrorChildNames } from '../api/children.js';
import { containerdHost } from '../api/hosts.js';
import type { KubeObject } from '../api/kube-object.js';
import {
  DERIVED_FROM_ANNOTATION,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  MIRROR_LABEL,
  S3_CREDENTIAL_KEYS,
  SECRET_MIRRORS_ANNOTATION,
} from '../api/names.js';
import { credentialsHash } from './hash.js';

export interface SecretLike {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly uid?: string;
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly type?: string;
  readonly data?: Readonly<Record<string, string>>;
}

export type CredentialsResult =
  | {
      readonly ok: true;
      /** The Secret the registry pods read (the referenced one, or the derived one). */
      readonly secretName: string;
      /** HMAC of the username and password, for the pod-template annotation. */
      readonly hash: string;
      /** The HMAC key (the referenced Secret's uid), for the derived Secret's content hash. */
      readonly hmacKey: string;
      /** A Secret to apply, when the referenced one is a dockerconfigjson Secret. */
      readonly derived?: KubeObject;
    }
  | {
      readonly ok: false;
      readonly reason: 'CredentialsSecretNotFound' | 'CredentialsSecretInvalid' | 'CredentialsSecretNotOptedIn';
      readonly message: string;
    };

export const DOCKERCONFIGJSON = 'kubernetes.io/dockerconfigjson';

export function derivedSecretName(mirror: string): string {
  return mirrorChildNames(mirror).credentialsSecret;
}

/** The entries of a Secret's opt-in annotation, `<mirror>@<host>` (comma-separated; blanks ignored). */
export function optedInMirrors(annotations: Readonly<Record<string, string>> | undefined): string[] {
  return (annotations?.[SECRET_MIRRORS_ANNOTATION] ?? '')
    .split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
}

/** The opt-in entry that lets `mirror` send a Secret to `host`. */
export function optInEntry(mirror: string, host: string): string {
  return `${mirror}@${host}`;
}

/**
 * Whether a Secret opted in to being sent by `mirror` to `host` (a registry host, compared as
 * containerd names it: `docker.io` and `registry-1.docker.io` are one; or an S3 endpoint's host).
 */
export function secretOptedIn(secret: SecretLike, mirror: string, host: string): boolean {
  const want = normalizeRegistryHost(host);
  return optedInMirrors(secret.metadata?.annotations).some((entry) => {
    const at = entry.lastIndexOf('@');
    return at > 0 && entry.slice(0, at) === mirror && normalizeRegistryHost(entry.slice(at + 1)) === want;
  });
}

/** Where a bucket Secret is sent: the endpoint, or AWS S3's regional one (its opt-in entry names the host). */
export function objectStorageEndpoint(s3: { readonly endpoint?: string; readonly region: string }): string {
  return s3.endpoint ?? `https://s3.${s3.region}.amazonaws.com`;
}

/** Why a Secret that did not opt in is not used, and the `kubectl annotate` that lets `mirror` use it. */
function notOptedInMessage(
  ref: string,
  args: {
    readonly secretName: string;
    readonly secret: SecretLike;
    readonly mirror: string;
    readonly namespace: string;
    /** The host it would be sent to. */
    readonly sentTo: string;
  },
): string {
  const { secretName, secret, mirror, namespace, sentTo } = args;
  const entry = optInEntry(mirror, normalizeRegistryHost(sentTo));
  // An entry of the mirror without a host (the form before hosts) is replaced; the others are kept.
  const others = optedInMirrors(secret.metadata?.annotations).filter((e) => e !== mirror);
  const value = [...others, entry].join(',');
  return (
    `${ref} does not list ${entry} (mirror '${mirror}', sent to ${sentTo}) in its annotation ${SECRET_MIRRORS_ANNOTATION}, ` +
    `so it is not sent there. If this mirror may send it to that host, let it with ` +
    `kubectl -n ${namespace} annotate secret ${secretName} --overwrite ${SECRET_MIRRORS_ANNOTATION}=${value}`
  );
}

/** `https://Index.Docker.io/v1/` → `docker.io`; `quay.io:443/x` → `quay.io:443`. */
export function normalizeRegistryHost(key: string): string {
  const host = key
    .trim()
    .toLowerCase()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  return containerdHost(host.split('/')[0] ?? '');
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

function unb64(s: string): string {
  return Buffer.from(s, 'base64').toString('utf8');
}

/** Username and password of `host` in a docker config JSON, or a reason (without values) why not. */
export function extractDockerAuth(
  configJson: string,
  host: string,
): { username: string; password: string } | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(configJson);
  } catch {
    return { error: 'its .dockerconfigjson is not valid JSON' };
  }
  const auths = (parsed as { auths?: unknown } | null)?.auths;
  if (auths === null || typeof auths !== 'object') return { error: 'its .dockerconfigjson has no "auths" object' };
  const want = normalizeRegistryHost(host);
  const entries = Object.entries(auths as Record<string, unknown>);
  const match = entries.find(([k]) => normalizeRegistryHost(k) === want);
  if (!match) {
    const hosts = entries.map(([k]) => normalizeRegistryHost(k)).join(', ') || 'none';
    return { error: `its .dockerconfigjson has no auths entry for ${want} (hosts found: ${hosts})` };
  }
  const entry = (match[1] ?? {}) as { username?: unknown; password?: unknown; auth?: unknown };
  if (typeof entry.username === 'string' && typeof entry.password === 'string' && entry.username !== '') {
    return { username: entry.username, password: entry.password };
  }
  if (typeof entry.auth === 'string') {
    const decoded = unb64(entry.auth);
    const i = decoded.indexOf(':');
    if (i > 0) return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  return { error: `its auths entry for ${want} has neither username and password nor a user:password "auth"` };
}

/** A `kubernetes.io/dockerconfigjson` Secret's auths entry for the upstream, as the derived username/password Secret. */
function fromDockerConfig(args: {
  readonly mirror: string;
  readonly upstreamUrl: string;
  readonly credentialsSecret: string;
  readonly namespace: string;
  readonly secret: SecretLike;
  /** The HMAC key: the Secret's uid. */
  readonly key: string;
  /** The outcome when there is no key. */
  readonly noKey: CredentialsResult;
  /** `Secret <namespace>/<name>`, for messages. */
  readonly ref: string;
}): CredentialsResult {
  const { mirror, upstreamUrl, credentialsSecret, namespace, key, noKey, ref } = args;
  const data = args.secret.data ?? {};
  const raw = data['.dockerconfigjson'];
  const auth =
    raw === undefined ? { error: 'it has no .dockerconfigjson key' } : extractDockerAuth(unb64(raw), upstreamUrl);
  if ('error' in auth) {
    return {
      ok: false,
      reason: 'CredentialsSecretInvalid',
      message: `${ref} (spec.credentialsSecret) is a ${DOCKERCONFIGJSON} Secret, but ${auth.error}. Add an auths entry for ${normalizeRegistryHost(upstreamUrl)}.`,
    };
  }
  if (!key) return noKey;
  const name = derivedSecretName(mirror);
  const derivedData = { password: b64(auth.password), username: b64(auth.username) };
  return {
    ok: true,
    secretName: name,
    hash: credentialsHash(key, derivedData),
    hmacKey: key,
    derived: {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace,
        labels: { [MIRROR_LABEL]: mirror, [MANAGED_BY_LABEL]: MANAGED_BY },
        annotations: { [DERIVED_FROM_ANNOTATION]: credentialsSecret },
      },
      type: 'Opaque',
      data: derivedData,
    },
  };
}

/**
 * Resolve a mirror's credentials. Returns `undefined` when the mirror has no `credentialsSecret`.
 * `secret` is the referenced Secret as the informer sees it, or `undefined` when it does not exist.
 */
export function resolveCredentials(args: {
  readonly mirror: string;
  readonly upstreamUrl: string;
  readonly credentialsSecret: string | undefined;
  readonly namespace: string;
  readonly secret: SecretLike | undefined;
}): CredentialsResult | undefined {
  const { mirror, upstreamUrl, credentialsSecret, namespace, secret } = args;
  if (credentialsSecret === undefined) return undefined;
  const ref = `Secret ${namespace}/${credentialsSecret}`;
  if (secret === undefined) {
    return {
      ok: false,
      reason: 'CredentialsSecretNotFound',
      message:
        `${ref} (spec.credentialsSecret) does not exist. Create it with keys username and password ` +
        `(or as a ${DOCKERCONFIGJSON} Secret), or remove spec.credentialsSecret.`,
    };
  }
  if (!secretOptedIn(secret, mirror, upstreamUrl)) {
    // Only someone who may write the Secret can let a mirror use it: the RegistryMirror's author
    // may not be able to read it, and the mirror would send it to an upstream of their choosing.
    return {
      ok: false,
      reason: 'CredentialsSecretNotOptedIn',
      message: notOptedInMessage(`${ref} (spec.credentialsSecret)`, {
        secretName: credentialsSecret,
        secret,
        mirror,
        namespace,
        sentTo: upstreamUrl,
      }),
    };
  }
  // The HMAC key must be unguessable: a Secret read from the API server always has a uid, and a
  // name would be no key at all (anyone could recompute the annotation from a guessed password).
  const key = secret.metadata?.uid ?? '';
  const noKey: CredentialsResult = {
    ok: false,
    reason: 'CredentialsSecretInvalid',
    message: `${ref} (spec.credentialsSecret) has no metadata.uid, so its content cannot be hashed safely; the controller reads it again on its next change.`,
  };
  const data = secret.data ?? {};

  if (secret.type === DOCKERCONFIGJSON)
    return fromDockerConfig({ ...args, credentialsSecret, secret, key, noKey, ref });

  const missing = ['username', 'password'].filter((k) => data[k] === undefined);
  if (missing.length > 0 || unb64(data.username ?? '') === '') {
    const what = missing.length > 0 ? `has no key ${missing.join(' and no key ')}` : 'has an empty username';
    return {
      ok: false,
      reason: 'CredentialsSecretInvalid',
      message: `${ref} (spec.credentialsSecret) ${what}. It needs keys username and password (or type ${DOCKERCONFIGJSON}).`,
    };
  }
  if (!key) return noKey;
  return { ok: true, secretName: credentialsSecret, hash: credentialsHash(key, data), hmacKey: key };
}

/** The Secrets a mirror's spec names: its upstream credentials and its bucket's. */
export function referencedSecrets(spec: unknown): string[] {
  const s = spec as
    { credentialsSecret?: unknown; objectStorage?: { s3?: { credentialsSecret?: unknown } } } | undefined;
  return [s?.credentialsSecret, s?.objectStorage?.s3?.credentialsSecret].filter(
    (x): x is string => typeof x === 'string',
  );
}

export type ObjectStorageCredentialsResult =
  | { readonly ok: true; readonly hash: string }
  | {
      readonly ok: false;
      readonly reason: 'ObjectStorageSecretNotFound' | 'ObjectStorageSecretInvalid' | 'ObjectStorageSecretNotOptedIn';
      readonly message: string;
    };

/**
 * Check a mirror's `spec.objectStorage.s3.credentialsSecret` (keys accessKey and secretKey) and
 * hash it, so a rotated key rolls the cache pods (the AWS SDK reads its env once, at start).
 * The same opt-in as `credentialsSecret`: the mirror would send the key to an endpoint its
 * author chose. Returns `undefined` when the mirror names no bucket Secret.
 */
export function resolveObjectStorageCredentials(args: {
  readonly mirror: string;
  readonly secretName: string | undefined;
  /** Where the key is sent (objectStorageEndpoint). */
  readonly endpoint: string;
  readonly namespace: string;
  readonly secret: SecretLike | undefined;
}): ObjectStorageCredentialsResult | undefined {
  const { mirror, secretName, endpoint, namespace, secret } = args;
  if (secretName === undefined) return undefined;
  const ref = `Secret ${namespace}/${secretName} (spec.objectStorage.s3.credentialsSecret)`;
  if (secret === undefined) {
    return {
      ok: false,
      reason: 'ObjectStorageSecretNotFound',
      message: `${ref} does not exist. Create it with keys accessKey and secretKey, or remove spec.objectStorage.s3.credentialsSecret to use the pod's own AWS identity.`,
    };
  }
  if (!secretOptedIn(secret, mirror, endpoint)) {
    return {
      ok: false,
      reason: 'ObjectStorageSecretNotOptedIn',
      message: notOptedInMessage(ref, { secretName, secret, mirror, namespace, sentTo: endpoint }),
    };
  }
  const data = secret.data ?? {};
  const keys = Object.keys(S3_CREDENTIAL_KEYS);
  const empty = keys.filter((k) => unb64(data[k] ?? '') === '');
  if (empty.length > 0) {
    return {
      ok: false,
      reason: 'ObjectStorageSecretInvalid',
      message: `${ref} has no value for key ${empty.join(' and key ')}. It needs keys accessKey and secretKey.`,
    };
  }
  const key = secret.metadata?.uid ?? '';
  if (!key) {
    return {
      ok: false,
      reason: 'ObjectStorageSecretInvalid',
      message: `${ref} has no metadata.uid, so its content cannot be hashed safely; the controller reads it again on its next change.`,
    };
  }
  return { ok: true, hash: credentialsHash(key, data, keys) };
}
