/**
 * The controller's settings, resolved once. Every default is named here, and
 * resolveControllerConfig() is the one place that applies them: the CLI (its flags, environment
 * and help text) and startController go through it, and nothing below it defaults a setting again.
 *
 * Constants only and light imports: the CLI's help text reads them without loading the
 * Kubernetes client.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

import type { KubeConfig } from '@kubernetes/client-node';
import type { DestinationStream, Logger } from 'pino';

import type { MirrorPolicy } from '../api/policy.js';
import {
  DEFAULT_CLUSTER_DOMAIN,
  DEFAULT_NODE_AGENT_IMAGE,
  DEFAULT_NODE_RUNTIME,
  DEFAULT_SECONDS_BETWEEN_STREAMS,
  defaultNodeAgentNamespace,
  LEASE_NAME,
  type NodeRuntime,
} from '../construct/platform.js';
import {
  DEFAULT_LEASE_DURATION_SECONDS,
  DEFAULT_RENEW_DEADLINE_SECONDS,
  DEFAULT_RETRY_PERIOD_SECONDS,
} from './timings.js';

/** Default deadline of one API request, in seconds. */
export const DEFAULT_REQUEST_TIMEOUT_SECONDS = 30;
/**
 * Default watch idle timeout, in seconds: two and a half of the API server's bookmark periods
 * (one minute), so only a dead connection hits it.
 */
export const DEFAULT_WATCH_IDLE_SECONDS = 150;
/** Default stall time, in seconds: ten request timeouts. */
export const DEFAULT_STALL_SECONDS = 300;

/** Every default of the controller's settings. */
export const CONTROLLER_DEFAULTS = {
  secondsBetweenStreams: DEFAULT_SECONDS_BETWEEN_STREAMS,
  clusterDomain: DEFAULT_CLUSTER_DOMAIN,
  nodeRuntime: DEFAULT_NODE_RUNTIME,
  nodeAgentImage: DEFAULT_NODE_AGENT_IMAGE,
  leaderElection: true,
  leaseName: LEASE_NAME,
  leaseDurationSeconds: DEFAULT_LEASE_DURATION_SECONDS,
  renewDeadlineSeconds: DEFAULT_RENEW_DEADLINE_SECONDS,
  retryPeriodSeconds: DEFAULT_RETRY_PERIOD_SECONDS,
  requestTimeoutSeconds: DEFAULT_REQUEST_TIMEOUT_SECONDS,
  watchIdleTimeoutSeconds: DEFAULT_WATCH_IDLE_SECONDS,
  stallSeconds: DEFAULT_STALL_SECONDS,
  resyncSeconds: 600,
  workers: 4,
  watchTimeoutSeconds: [300, 600] as readonly [number, number],
  /** The longest per-mirror retry backoff (README: "up to two minutes"). */
  maxRetryDelayMs: 120_000,
  logLevel: 'info',
  takeover: false,
} as const;

/** The controller's settings, resolved: every field set (a field that may be absent says so in its type). */
export interface ControllerConfig {
  /** A loaded KubeConfig (in a pod: the in-cluster one). */
  readonly kubeConfig: KubeConfig;
  /** Output namespace of every mirror's children. */
  readonly namespace: string;
  /** Namespace of the node agents' DaemonSets and ConfigMaps (by default `<namespace>-node`). */
  readonly nodeAgentNamespace: string;
  readonly clusterDomain: string;
  /** The cluster's node container runtime, for the node agents. */
  readonly nodeRuntime: NodeRuntime;
  /** The node agent's image (the platform's, never a spec's). */
  readonly nodeAgentImage: string;
  /**
   * The image of the fill of mirrors with `spec.fill: streaming`: the controller's own
   * (controller-manifests sets FILL_IMAGE to it); undefined: such mirrors stall with NoFillImage.
   */
  readonly fillImage: string | undefined;
  /** Wait before restarting informers after an API failure, while the CRD or the namespace does not exist. */
  readonly secondsBetweenStreams: number;
  /** Port of /metrics (and of the probes unless `probePort` is set); 0 picks a free port; undefined: no server. */
  readonly metricsPort: number | undefined;
  /** Address the metrics server binds; undefined: '0.0.0.0'. */
  readonly metricsHost: string | undefined;
  /** Port of /healthz and /readyz when they should not share the metrics port. */
  readonly probePort: number | undefined;
  /** undefined: '0.0.0.0'. */
  readonly probeHost: string | undefined;
  readonly leaderElection: boolean;
  readonly leaseNamespace: string;
  readonly leaseName: string;
  readonly identity: string;
  /** A standby takes the Lease when its holder has not renewed it for this long. */
  readonly leaseDurationSeconds: number;
  /** The leader stops (and `done` rejects) when it could not renew the Lease for this long. */
  readonly renewDeadlineSeconds: number;
  /** Between Lease attempts. */
  readonly retryPeriodSeconds: number;
  /** Deadline of every API request (a Lease renew's is cut to the renew deadline). */
  readonly requestTimeoutSeconds: number;
  /** A watch that receives nothing, not even a bookmark, for this long is restarted. */
  readonly watchIdleTimeoutSeconds: number;
  /** /healthz fails when a reconcile runs, or queued mirrors wait with no reconcile ending, this long. */
  readonly stallSeconds: number;
  /** Reconcile every mirror this often even without events. */
  readonly resyncSeconds: number;
  /** Mirrors reconciled concurrently. */
  readonly workers: number;
  /** Server-side watch timeout range in seconds. */
  readonly watchTimeoutSeconds: readonly [number, number];
  readonly logLevel: string;
  /** A logger to use as is; undefined: pino JSON to `logDestination`. */
  readonly logger: Logger | undefined;
  /** undefined: stdout. */
  readonly logDestination: DestinationStream | undefined;
  /** Longest per-mirror retry backoff in milliseconds. */
  readonly maxRetryDelayMs: number;
  /**
   * The lists of what RegistryMirrors may name (api/policy.ts) set by the controller's own flags,
   * variables or cdk8s.yaml: these are fixed. Every list not set here is read, live, from the
   * allowlist ConfigMap in `namespace` (a change re-checks every mirror). A mirror the lists refuse
   * stalls with NotAllowed; one a list with a bad entry governs, with InvalidAllowlist.
   */
  readonly policy: MirrorPolicy;
  /**
   * Take mirrors over from the original mirror-operator (controller/takeover.ts); its RBAC must
   * grant pod and claim `delete` (`controller-manifests --takeover`). When off, a mirror whose
   * children's names hold the original's objects stalls with TakeoverDisabled.
   */
  readonly takeover: boolean;
}

/** What startController is given: the KubeConfig and namespace, and any setting to change from its default. */
export type ControllerOptions = Pick<ControllerConfig, 'kubeConfig' | 'namespace'> &
  Partial<Omit<ControllerConfig, 'kubeConfig' | 'namespace'>>;

/** Every setting of `opts`, the defaults filling the rest (an identity is made: hostname plus a random suffix). */
export function resolveControllerConfig(opts: ControllerOptions): ControllerConfig {
  const d = CONTROLLER_DEFAULTS;
  return {
    kubeConfig: opts.kubeConfig,
    namespace: opts.namespace,
    nodeAgentNamespace: opts.nodeAgentNamespace ?? defaultNodeAgentNamespace(opts.namespace),
    clusterDomain: opts.clusterDomain ?? d.clusterDomain,
    nodeRuntime: opts.nodeRuntime ?? d.nodeRuntime,
    nodeAgentImage: opts.nodeAgentImage ?? d.nodeAgentImage,
    fillImage: opts.fillImage,
    secondsBetweenStreams: opts.secondsBetweenStreams ?? d.secondsBetweenStreams,
    metricsPort: opts.metricsPort,
    metricsHost: opts.metricsHost,
    probePort: opts.probePort,
    probeHost: opts.probeHost,
    leaderElection: opts.leaderElection ?? d.leaderElection,
    leaseNamespace: opts.leaseNamespace ?? opts.namespace,
    leaseName: opts.leaseName ?? d.leaseName,
    identity: opts.identity ?? `${hostname()}_${randomUUID().slice(0, 8)}`,
    leaseDurationSeconds: opts.leaseDurationSeconds ?? d.leaseDurationSeconds,
    renewDeadlineSeconds: opts.renewDeadlineSeconds ?? d.renewDeadlineSeconds,
    retryPeriodSeconds: opts.retryPeriodSeconds ?? d.retryPeriodSeconds,
    requestTimeoutSeconds: opts.requestTimeoutSeconds ?? d.requestTimeoutSeconds,
    watchIdleTimeoutSeconds: opts.watchIdleTimeoutSeconds ?? d.watchIdleTimeoutSeconds,
    stallSeconds: opts.stallSeconds ?? d.stallSeconds,
    resyncSeconds: opts.resyncSeconds ?? d.resyncSeconds,
    workers: opts.workers ?? d.workers,
    watchTimeoutSeconds: opts.watchTimeoutSeconds ?? d.watchTimeoutSeconds,
    logLevel: opts.logLevel ?? d.logLevel,
    logger: opts.logger,
    logDestination: opts.logDestination,
    maxRetryDelayMs: opts.maxRetryDelayMs ?? d.maxRetryDelayMs,
    policy: opts.policy ?? {},
    takeover: opts.takeover ?? d.takeover,
  };
}
