/**
 * The RegistryMirror construct: one mirror spec in, the Kubernetes objects that run it out.
 * Pure: no clock, no randomness, no I/O. Same props, same objects.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Construct } from 'constructs';
import {
  REGISTRY_CONFIG_PATH,
  REGISTRY_DEBUG_PORT,
  REGISTRY_PORT,
  REGISTRY_STORAGE_PATH,
  renderDistributionConfig,
} from './distribution.js';
import { k8s } from './k8s.js';
import type { MirrorSpec } from './schema.js';
import { containerdHost, upstreamServerUrl, withRegistry } from './upstream.js';

/** Pinned images. The registry's version matches the one the end-to-end tests build. */
export const REGISTRY_IMAGE = 'docker.io/library/registry:3.1.1';
export const NODE_AGENT_IMAGE = 'docker.io/library/busybox:1.37.0';

export const MIRROR_LABEL = 'mirror';
export const COMPONENT_LABEL = 'app.kubernetes.io/component';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'mirror-synth';
export const ANNOTATION_PREFIX = 'mirror-synth.k8s.osp.tech';
export const CONFIG_HASH_ANNOTATION = `${ANNOTATION_PREFIX}/config-hash`;
export const CREDENTIALS_HASH_ANNOTATION = `${ANNOTATION_PREFIX}/credentials-hash`;

export const DEFAULT_NAMESPACE = 'kube-extra';
export const DEFAULT_STORAGE = '20Gi';
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
export const NODE_CERTS_DIR = '/etc/containerd/certs.d';
const AGENT_CERTS_DIR = '/host/etc/containerd/certs.d';
const AGENT_SCRIPT_DIR = '/opt/mirror-synth';

/** The node agent's POSIX sh script, shipped in a ConfigMap. */
export const NODE_AGENT_SCRIPT = readFileSync(new URL('../assets/node-agent.sh', import.meta.url), 'utf8');

export interface RegistryMirrorProps extends Readonly<MirrorSpec> {
  /** The mirror's name (the RegistryMirror's metadata.name); children are `registry-mirror-<name>`. */
  readonly name: string;
  /**
   * Namespace of every child.
   * @default 'kube-extra'
   */
  readonly namespace?: string;
  /**
   * Hash of the credentials Secret's content. Set by the controller, which reads the Secret,
   * so a credentials change rolls the registry pods.
   * @default - no annotation; the pods roll only when the spec changes
   */
  readonly credentialsHash?: string;
  /**
   * The cluster's DNS domain, used by the node agent to find the mirror Service.
   * @default 'cluster.local'
   */
  readonly clusterDomain?: string;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function quantities(map: Record<string, string | number> | undefined): Record<string, k8s.Quantity> | undefined {
  if (map === undefined) return undefined;
  return Object.fromEntries(
    Object.entries(map).map(([k, v]) => [
      k,
      typeof v === 'number' ? k8s.Quantity.fromNumber(v) : k8s.Quantity.fromString(v),
    ]),
  );
}

const RESTRICTED_CONTAINER = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
} satisfies k8s.SecurityContext;

export class RegistryMirror extends Construct {
  /** Resolved settings. */
  public readonly mirrorName: string;
  public readonly namespace: string;
  public readonly resourceName: string;
  public readonly upstreamUrl: string;
  public readonly replicas: number;
  public readonly storage: string | number;
  /** Registry hosts the node agent points at this mirror (upstream first, then masqueradeUrl). */
  public readonly hosts: readonly string[];
  public readonly labels: Readonly<Record<string, string>>;

  /** Children. */
  public readonly cacheConfig: k8s.KubeConfigMap;
  public readonly agentConfig: k8s.KubeConfigMap;
  public readonly service: k8s.KubeService;
  public readonly headlessService: k8s.KubeService;
  public readonly cache: k8s.KubeStatefulSet;
  public readonly nodeAgent: k8s.KubeDaemonSet;

  constructor(scope: Construct, id: string, props: RegistryMirrorProps) {
    super(scope, id);
    this.mirrorName = props.name;
    this.namespace = props.namespace ?? DEFAULT_NAMESPACE;
    this.resourceName = `registry-mirror-${props.name}`;
    this.upstreamUrl = props.upstreamUrl;
    this.replicas = props.replicas ?? 1;
    this.storage = props.volumeClaimTemplate?.spec.resources?.requests.storage ?? DEFAULT_STORAGE;
    this.hosts = [containerdHost(props.upstreamUrl), ...(props.masqueradeUrl ? [props.masqueradeUrl] : [])];
    this.labels = {
      ...props.labels,
      [MIRROR_LABEL]: props.name,
      'app.kubernetes.io/name': 'registry-mirror',
      'app.kubernetes.io/instance': props.name,
      [MANAGED_BY_LABEL]: MANAGED_BY,
    };
    const name = this.resourceName;
    const namespace = this.namespace;
    const labelsFor = (component: string) => ({ ...this.labels, [COMPONENT_LABEL]: component });
    const selectorFor = (component: string) => ({ [MIRROR_LABEL]: props.name, [COMPONENT_LABEL]: component });
    const imagePullSecrets = props.imagePullSecrets?.map((s) => ({ name: s.name }));
    const podSecurity: k8s.PodSecurityContext = { seccompProfile: { type: 'RuntimeDefault' } };

    // --- The cache: Distribution in proxy mode.
    const configYml = renderDistributionConfig({ mirrorName: props.name, upstreamUrl: props.upstreamUrl });
    this.cacheConfig = new k8s.KubeConfigMap(this, 'CacheConfig', {
      metadata: { name: `${name}-config`, namespace, labels: labelsFor('cache') },
      data: { 'config.yml': configYml },
    });

    const cacheSelector = selectorFor('cache');
    this.headlessService = new k8s.KubeService(this, 'HeadlessService', {
      metadata: { name: `${name}-headless`, namespace, labels: labelsFor('cache') },
      spec: {
        clusterIp: 'None',
        selector: cacheSelector,
        publishNotReadyAddresses: true,
        ports: [
          { name: 'http', port: REGISTRY_PORT, targetPort: k8s.IntOrString.fromString('http') },
          { name: 'metrics', port: REGISTRY_DEBUG_PORT, targetPort: k8s.IntOrString.fromString('metrics') },
        ],
      },
    });
    this.service = new k8s.KubeService(this, 'Service', {
      metadata: { name, namespace, labels: labelsFor('cache') },
      spec: {
        type: 'ClusterIP',
        selector: cacheSelector,
        ports: [{ name: 'http', port: REGISTRY_PORT, targetPort: k8s.IntOrString.fromString('http') }],
      },
    });

    const credentialsEnv: k8s.EnvVar[] = props.credentialsSecret
      ? (['username', 'password'] as const).map((key) => ({
          name: `REGISTRY_PROXY_${key.toUpperCase()}`,
          valueFrom: { secretKeyRef: { name: props.credentialsSecret!, key } },
        }))
      : [];
    const cacheAnnotations: Record<string, string> = { [CONFIG_HASH_ANNOTATION]: sha256(configYml) };
    if (props.credentialsHash !== undefined) cacheAnnotations[CREDENTIALS_HASH_ANNOTATION] = props.credentialsHash;
    const httpProbe = (periodSeconds: number, failureThreshold: number): k8s.Probe => ({
      httpGet: { path: '/', port: k8s.IntOrString.fromString('http') },
      periodSeconds,
      failureThreshold,
      timeoutSeconds: 5,
    });

    this.cache = new k8s.KubeStatefulSet(this, 'Cache', {
      metadata: { name, namespace, labels: labelsFor('cache') },
      spec: {
        serviceName: this.headlessService.name,
        replicas: this.replicas,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: cacheSelector },
        template: {
          metadata: { labels: labelsFor('cache'), annotations: cacheAnnotations },
          spec: {
            // Pod Security "restricted": non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp.
            securityContext: { ...podSecurity, runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000 },
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            priorityClassName: props.priorityClassName,
            nodeSelector: props.nodeSelector,
            tolerations: props.tolerations?.map((t) => ({ ...t })),
            imagePullSecrets,
            containers: [
              {
                name: 'registry',
                image: withRegistry(REGISTRY_IMAGE, props.imageRegistry),
                command: ['registry', 'serve', REGISTRY_CONFIG_PATH],
                ports: [
                  { name: 'http', containerPort: REGISTRY_PORT },
                  { name: 'metrics', containerPort: REGISTRY_DEBUG_PORT },
                ],
                env: [{ name: 'OTEL_TRACES_EXPORTER', value: 'none' }, ...credentialsEnv],
                resources: {
                  requests: quantities(props.resources?.requests ?? { cpu: '100m', memory: '128Mi' }),
                  limits: quantities(props.resources?.limits ?? { memory: '1Gi' }),
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
              { name: 'config', configMap: { name: this.cacheConfig.name } },
              { name: 'tmp', emptyDir: {} },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'cache', labels: labelsFor('cache') },
            spec: {
              accessModes: props.volumeClaimTemplate?.spec.accessModes ?? ['ReadWriteOnce'],
              storageClassName: props.volumeClaimTemplate?.spec.storageClassName,
              resources: {
                requests: {
                  storage:
                    typeof this.storage === 'number'
                      ? k8s.Quantity.fromNumber(this.storage)
                      : k8s.Quantity.fromString(this.storage),
                },
              },
            },
          },
        ],
      },
    });

    // --- The node agent: points every node's containerd at the Service.
    this.agentConfig = new k8s.KubeConfigMap(this, 'AgentConfig', {
      metadata: { name: `${name}-agent`, namespace, labels: labelsFor('node-agent') },
      data: { 'node-agent.sh': NODE_AGENT_SCRIPT },
    });
    const serviceHostVar = `${name.toUpperCase().replace(/-/g, '_')}_SERVICE_HOST`;
    const agentSelector = selectorFor('node-agent');
    this.nodeAgent = new k8s.KubeDaemonSet(this, 'NodeAgent', {
      metadata: { name, namespace, labels: labelsFor('node-agent') },
      spec: {
        selector: { matchLabels: agentSelector },
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(1) } },
        template: {
          metadata: {
            labels: labelsFor('node-agent'),
            annotations: { [CONFIG_HASH_ANNOTATION]: sha256(NODE_AGENT_SCRIPT) },
          },
          spec: {
            securityContext: podSecurity,
            automountServiceAccountToken: false,
            priorityClassName: props.priorityClassName,
            // Every node's runtime should use the mirror, tainted nodes included, unless told otherwise.
            tolerations: props.tolerations?.map((t) => ({ ...t })) ?? [{ operator: 'Exists' }],
            imagePullSecrets,
            terminationGracePeriodSeconds: 30,
            containers: [
              {
                name: 'node-agent',
                image: withRegistry(NODE_AGENT_IMAGE, props.imageRegistry),
                command: ['sh', `${AGENT_SCRIPT_DIR}/node-agent.sh`],
                env: [
                  { name: 'MIRROR_NAME', value: props.name },
                  { name: 'HOSTS', value: this.hosts.join(' ') },
                  { name: 'SERVER_URL', value: upstreamServerUrl(props.upstreamUrl) },
                  {
                    name: 'SERVICE_NAME',
                    value: `${name}.${namespace}.svc.${props.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN}`,
                  },
                  { name: 'SERVICE_HOST_VAR', value: serviceHostVar },
                  { name: 'SERVICE_PORT', value: String(REGISTRY_PORT) },
                  { name: 'CERTS_DIR', value: AGENT_CERTS_DIR },
                  { name: 'RESOLVE_INTERVAL', value: '60' },
                ],
                resources: {
                  requests: quantities({ cpu: '5m', memory: '8Mi' }),
                  limits: quantities({ memory: '32Mi' }),
                },
                // Root without capabilities: enough to write root-owned files under certs.d, nothing more.
                // hostPath rules out Pod Security "restricted" for this pod; see README.
                securityContext: { ...RESTRICTED_CONTAINER, runAsUser: 0, runAsNonRoot: false, privileged: false },
                volumeMounts: [
                  { name: 'certs-d', mountPath: AGENT_CERTS_DIR },
                  { name: 'script', mountPath: AGENT_SCRIPT_DIR, readOnly: true },
                ],
              },
            ],
            volumes: [
              { name: 'certs-d', hostPath: { path: NODE_CERTS_DIR, type: 'DirectoryOrCreate' } },
              { name: 'script', configMap: { name: this.agentConfig.name, defaultMode: 0o555 } },
            ],
          },
        },
      },
    });
  }
}
