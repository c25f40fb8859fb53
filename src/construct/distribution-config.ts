/**
 * The CNCF Distribution (registry v3) configuration for a pull-through cache. Pure: spec in,
 * config.yml text out. It holds no secret: upstream credentials reach the registry through
 * Distribution's `proxy.exec` credential helper (assets/credential-helper.sh), which reads the
 * credentials Secret mounted as a volume.
 *
 * Every mirror has `proxy.exec`, with credentials or without (the helper then answers with none,
 * and Distribution asks the upstream anonymously). Without it, Distribution 3.1.2 discovers the
 * upstream's token URLs at start (`configureAuth`: a GET of `<remoteurl>/v2/`) and panics when the
 * upstream cannot be reached (distribution #4038), so a cache pod restarted during an upstream
 * outage would crash-loop exactly when its volume is the only copy. `proxy.exec` makes no call
 * upstream at start.
 */
import { stringify } from 'yaml';

import { upstreamServerUrl } from '../api/hosts.js';
import { DISTRIBUTION_PORT, REGISTRY_DEBUG_PORT } from './ports.js';

export const REGISTRY_CONFIG_DIR = '/etc/distribution';
export const REGISTRY_CONFIG_PATH = `${REGISTRY_CONFIG_DIR}/config.yml`;
export const REGISTRY_STORAGE_PATH = '/var/lib/registry';
/** The credential helper, from the cache ConfigMap (mounted executable beside config.yml). */
export const CREDENTIAL_HELPER_FILE = 'credential-helper.sh';
export const CREDENTIAL_HELPER_PATH = `${REGISTRY_CONFIG_DIR}/${CREDENTIAL_HELPER_FILE}`;
/** Where the credentials Secret is mounted; the helper reads `username` and `password` there. */
export const CREDENTIALS_DIR = '/etc/mirror-synth/credentials';
/**
 * How long Distribution reuses what the helper printed before running it again: a rotated
 * Secret is used at most this long after the kubelet has updated the mounted files.
 */
export const CREDENTIALS_LIFETIME = '30s';

/** Where Distribution keeps its cache when `spec.objectStorage.s3` is set (see schema.ts). */
export interface S3StorageProps {
  readonly bucket: string;
  readonly region: string;
  readonly endpoint?: string;
  readonly forcePathStyle?: boolean;
  readonly rootDirectory?: string;
}

/** The S3 key prefix of a mirror that names none: one prefix per mirror, so mirrors can share a bucket. */
function defaultS3RootDirectory(mirrorName: string): string {
  return `/registry-mirror/${mirrorName}`;
}

/**
 * The storage section for a bucket. The credentials are not in it: the AWS SDK reads
 * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the container's env (a secretKeyRef), or its
 * own chain (pod identity, instance role) when the mirror names no Secret.
 */
function s3Storage(mirrorName: string, s3: S3StorageProps): Record<string, unknown> {
  return {
    bucket: s3.bucket,
    region: s3.region,
    ...(s3.endpoint === undefined ? {} : { regionendpoint: s3.endpoint.replace(/\/$/, '') }),
    forcepathstyle: s3.forcePathStyle ?? s3.endpoint !== undefined,
    rootdirectory: s3.rootDirectory ?? defaultS3RootDirectory(mirrorName),
  };
}

export interface DistributionConfigProps {
  readonly mirrorName: string;
  readonly upstreamUrl: string;
  /**
   * Keep the cache in this bucket, shared by every replica, instead of on the pod's volume.
   * @default - the cache volume (filesystem driver)
   */
  readonly s3?: S3StorageProps;
  /**
   * The keeper evicts from the store (construct/keeper.ts): no in-memory blob descriptor cache,
   * which would go on listing a blob whose file is gone (distribution#4191).
   * @default false
   */
  readonly keeper?: boolean;
}

export function distributionConfig(props: DistributionConfigProps): Record<string, unknown> {
  return {
    version: 0.1,
    log: {
      level: 'info',
      formatter: 'json',
      fields: { service: 'registry-mirror', mirror: props.mirrorName },
      accesslog: { disabled: false },
    },
    storage: {
      ...(props.s3
        ? {
            s3: s3Storage(props.mirrorName, props.s3),
            // Serve blobs through the front, never as a redirect to the bucket: nodes may not
            // reach it, and the front could not cache them.
            redirect: { disable: true },
          }
        : { filesystem: { rootdirectory: REGISTRY_STORAGE_PATH } }),
      // The proxy's TTL evicts cached blobs by deleting them.
      delete: { enabled: true },
      // Not with a bucket: its lifecycle rules may delete a blob a replica's memory still lists.
      // Nor with the keeper, which deletes blobs a replica's memory would still list.
      ...(props.s3 || props.keeper ? {} : { cache: { blobdescriptor: 'inmemory' } }),
      maintenance: { uploadpurging: { enabled: true, age: '168h', interval: '24h', dryrun: false } },
    },
    http: {
      // Only the front, in the same pod, talks to Distribution.
      addr: `127.0.0.1:${DISTRIBUTION_PORT}`,
      headers: { 'X-Content-Type-Options': ['nosniff'] },
      // The pod's loopback only: pprof and expvar are there too. The front passes /metrics on.
      debug: { addr: `127.0.0.1:${REGISTRY_DEBUG_PORT}`, prometheus: { enabled: true, path: '/metrics' } },
    },
    health: { storagedriver: { enabled: true, interval: '10s', threshold: 3 } },
    proxy: {
      remoteurl: upstreamServerUrl(props.upstreamUrl),
      // The TTL's state is one file per storage root (scheduler-state.json), which replicas
      // sharing a bucket would overwrite in turn: with a bucket, the bucket's own lifecycle
      // rules bound the cache, and 0 turns Distribution's expiry off.
      ttl: props.s3 ? '0s' : '168h',
      // Always, so that Distribution makes no call upstream at start (see the top of this file).
      exec: { command: CREDENTIAL_HELPER_PATH, lifetime: CREDENTIALS_LIFETIME },
    },
  };
}

/** config.yml as written into the ConfigMap: keys in a fixed order, so the same spec gives the same bytes. */
export function renderDistributionConfig(props: DistributionConfigProps): string {
  return `# Generated by mirror-synth for mirror ${props.mirrorName}. Holds no secret.\n${stringify(distributionConfig(props), { sortMapEntries: true, lineWidth: 0 })}`;
}
