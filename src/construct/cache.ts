/**
 * The cache: CNCF Distribution in proxy mode, as a StatefulSet with a volume per replica, its
 * config.yml in a ConfigMap, a ClusterIP Service for the nodes and a headless Service.
 */
import {
  CONFIG_HASH_ANNOTATION,
  CREDENTIALS_HASH_ANNOTATION,
  DEFAULT_STORAGE,
  REGISTRY_DEBUG_PORT,
  REGISTRY_PORT,
} from '../api/names.js';
import { REGISTRY_CONFIG_PATH, REGISTRY_STORAGE_PATH, renderDistributionConfig } from './distribution-config.js';
import { REGISTRY_IMAGE } from './images.js';
import { k8s } from './k8s.js';
import type { MirrorParts } from './parts.js';
import { RESTRICTED_CONTAINER, RUNTIME_DEFAULT_SECCOMP, configHash, quantities, quantity } from './pod.js';
import { withRegistry } from './upstream.js';

export interface MirrorCacheProps {
  /**
   * Hash of the credentials Secret's content, so a credentials change rolls the pods.
   * @default - no annotation; the pods roll only when the spec changes
   */
  readonly credentialsHash?: string;
}

export class MirrorCache {
  public readonly replicas: number;
  public readonly storage: string | number;
  public readonly config: k8s.KubeConfigMap;
  public readonly service: k8s.KubeService;
  public readonly headlessService: k8s.KubeService;
  public readonly statefulSet: k8s.KubeStatefulSet;

  constructor(parts: MirrorParts, props: MirrorCacheProps = {}) {
    const { scope, spec, namespace, resourceName: name } = parts;
    this.replicas = spec.replicas ?? 1;
    this.storage = spec.volumeClaimTemplate?.spec.resources?.requests.storage ?? DEFAULT_STORAGE;
    const labels = parts.labelsFor('cache');
    const selector = parts.selectorFor('cache');

    const configYml = renderDistributionConfig({ mirrorName: parts.mirrorName, upstreamUrl: spec.upstreamUrl });
    this.config = new k8s.KubeConfigMap(scope, 'CacheConfig', {
      metadata: { name: `${name}-config`, namespace, labels },
      data: { 'config.yml': configYml },
    });

    this.headlessService = new k8s.KubeService(scope, 'HeadlessService', {
      metadata: { name: `${name}-headless`, namespace, labels },
      spec: {
        clusterIp: 'None',
        selector,
        publishNotReadyAddresses: true,
        ports: [
          { name: 'http', port: REGISTRY_PORT, targetPort: k8s.IntOrString.fromString('http') },
          { name: 'metrics', port: REGISTRY_DEBUG_PORT, targetPort: k8s.IntOrString.fromString('metrics') },
        ],
      },
    });
    this.service = new k8s.KubeService(scope, 'Service', {
      metadata: { name, namespace, labels },
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [{ name: 'http', port: REGISTRY_PORT, targetPort: k8s.IntOrString.fromString('http') }],
      },
    });

    const credentialsEnv: k8s.EnvVar[] = spec.credentialsSecret
      ? (['username', 'password'] as const).map((key) => ({
          name: `REGISTRY_PROXY_${key.toUpperCase()}`,
          valueFrom: { secretKeyRef: { name: spec.credentialsSecret!, key } },
        }))
      : [];
    const annotations: Record<string, string> = { [CONFIG_HASH_ANNOTATION]: configHash(configYml) };
    if (props.credentialsHash !== undefined) annotations[CREDENTIALS_HASH_ANNOTATION] = props.credentialsHash;
    const httpProbe = (periodSeconds: number, failureThreshold: number): k8s.Probe => ({
      httpGet: { path: '/', port: k8s.IntOrString.fromString('http') },
      periodSeconds,
      failureThreshold,
      timeoutSeconds: 5,
    });

    this.statefulSet = new k8s.KubeStatefulSet(scope, 'Cache', {
      metadata: { name, namespace, labels },
      spec: {
        serviceName: this.headlessService.name,
        replicas: this.replicas,
        podManagementPolicy: 'Parallel',
        // The cache is disposable: its claims go with the StatefulSet (so with the mirror), and
        // stay when scaled down, where a later scale-up reuses them.
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Delete', whenScaled: 'Retain' },
        selector: { matchLabels: selector },
        template: {
          metadata: { labels, annotations },
          spec: {
            // Pod Security "restricted": non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp.
            securityContext: {
              ...RUNTIME_DEFAULT_SECCOMP,
              runAsNonRoot: true,
              runAsUser: 1000,
              runAsGroup: 1000,
              fsGroup: 1000,
            },
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            priorityClassName: spec.priorityClassName,
            nodeSelector: spec.nodeSelector,
            tolerations: spec.tolerations?.map((t) => ({ ...t })),
            imagePullSecrets: parts.imagePullSecrets,
            containers: [
              {
                name: 'registry',
                image: withRegistry(REGISTRY_IMAGE, spec.imageRegistry),
                command: ['registry', 'serve', REGISTRY_CONFIG_PATH],
                ports: [
                  { name: 'http', containerPort: REGISTRY_PORT },
                  { name: 'metrics', containerPort: REGISTRY_DEBUG_PORT },
                ],
                env: [{ name: 'OTEL_TRACES_EXPORTER', value: 'none' }, ...credentialsEnv],
                resources: {
                  requests: quantities(spec.resources?.requests ?? { cpu: '100m', memory: '128Mi' }),
                  limits: quantities(spec.resources?.limits ?? { memory: '1Gi' }),
                },
                readinessProbe: httpProbe(10, 3),
                livenessProbe: httpProbe(20, 6),
                securityContext: RESTRICTED_CONTAINER,
                volumeMounts: [
                  { name: 'config', mountPath: '/etc/distribution', readOnly: true },
                  { name: 'cache', mountPath: REGISTRY_STORAGE_PATH },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              { name: 'config', configMap: { name: this.config.name } },
              { name: 'tmp', emptyDir: {} },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'cache', labels },
            spec: {
              accessModes: spec.volumeClaimTemplate?.spec.accessModes ?? ['ReadWriteOnce'],
              storageClassName: spec.volumeClaimTemplate?.spec.storageClassName,
              resources: { requests: { storage: quantity(this.storage) } },
            },
          },
        ],
      },
    });
  }
}
