/**
 * Content hashes that let a no-op reconcile write nothing, and the credentials hash that
 * rolls the registry pods when their Secret changes.
 */
import { createHash, createHmac } from 'node:crypto';

import { sortKeys } from '../api/kube-object.js';
import { CONTENT_HASH_ANNOTATION } from '../api/names.js';

/** Annotation on every applied child: sha256 of the desired object as the controller last applied it. */

/** Canonical JSON: sorted keys, no whitespace, undefined dropped. Same value, same string. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

/** sha256 of an object's canonical JSON, as lower-case hex. */
export function contentHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/**
 * Hash of the credentials a mirror uses, for a pod-template annotation.
 *
 * Only the keys the registry reads (`keys`: `username` and `password` of the upstream
 * credentials, `accessKey` and `secretKey` of a bucket's) count, so an unrelated key does
 * not roll the pods. It is an HMAC keyed by the Secret's uid: the annotation is readable by
 * anyone who can read the StatefulSet, and a plain sha256 of a short password could be
 * brute-forced offline; the uid is only visible to those who can read the Secret itself.
 */
export function credentialsHash(
  key: string,
  data: Readonly<Record<string, string>>,
  keys: readonly string[] = ['password', 'username'],
): string {
  return hmac(key, Object.fromEntries(keys.map((k) => [k, data[k] ?? null])));
}

/** HMAC-SHA256 of a value's canonical JSON, keyed by a Secret's uid. */
function hmac(key: string, value: unknown): string {
  if (!key) throw new Error('an HMAC over secret data needs a key (the Secret uid)');
  return createHmac('sha256', `mirror-synth/credentials/${key}`).update(canonicalJson(value)).digest('hex');
}

/**
 * A copy of `obj` with the content-hash annotation set to the hash of `obj` itself (without that
 * annotation). A Secret's hash covers its data, and anyone who may read the Secret's metadata sees
 * the annotation: so it is an HMAC keyed by `secretKey` (the uid of the Secret its data comes
 * from), never a plain sha256 that could be brute-forced offline.
 */
export function withContentHash<T extends { kind?: string; metadata: { annotations?: Record<string, string> } }>(
  obj: T,
  secretKey?: string,
): T {
  const rest = { ...(obj.metadata.annotations ?? {}) };
  delete rest[CONTENT_HASH_ANNOTATION];
  const base = { ...obj, metadata: { ...obj.metadata, annotations: rest } };
  if (Object.keys(rest).length === 0) delete (base.metadata as { annotations?: unknown }).annotations;
  const hash = obj.kind === 'Secret' ? hmac(secretKey ?? '', base) : contentHash(base);
  return { ...obj, metadata: { ...obj.metadata, annotations: { ...rest, [CONTENT_HASH_ANNOTATION]: hash } } };
}
