/**
 * `mirror-synth controller`: run the controller until SIGTERM or SIGINT, then shut down
 * cleanly (finish reconciles in flight, stop watching, release the Lease).
 */
import { UsageError } from '../api/errors.js';
import { resolveControllerConfig } from '../controller/config.js';
import { startController } from '../controller/controller.js';
import { loadKubeConfig } from '../sources/kubeconfig.js';
import {
  type BindAddress,
  type LeaderTimingFlags,
  type PolicyFlags,
  resolveClusterDomain,
  resolveFillImage,
  resolveLeaderTimings,
  resolveMetricsBind,
  resolveNamespace,
  resolveNodeAgentImage,
  resolveNodeAgentNamespace,
  resolveNodeRuntime,
  resolvePolicy,
  resolveProbeBind,
  resolveSecondsBetweenStreams,
  resolveTakeover,
} from './options.js';

/** The controller command's flags as given (unresolved). */
export interface ControllerCommandOptions extends PolicyFlags, LeaderTimingFlags {
  readonly kubeconfig?: string;
  /** Output namespace of the mirrors' children. @default NAMESPACE, else 'kube-extra' */
  readonly namespace?: string;
  /** Namespace of the node agents. @default NODE_AGENT_NAMESPACE, else `<namespace>-node` */
  readonly nodeAgentNamespace?: string;
  /** Wait before reconnecting after the API server fails or while the CRD is missing. @default SECONDS_BETWEEN_STREAMS, else 30 */
  readonly secondsBetweenStreams?: number;
  /** Address of /metrics (and of /healthz and /readyz unless set apart), as controller-runtime spells it. @default ':8080' */
  readonly metricsBindAddress?: string;
  /** Address of /healthz and /readyz. @default - the metrics server's */
  readonly healthProbeBindAddress?: string;
  /** Port of /metrics, /healthz and /readyz: `--metrics-bind-address :<port>`. @default 8080 */
  readonly metricsPort?: number;
  /** Separate port for /healthz and /readyz: `--health-probe-bind-address :<port>`. */
  readonly probePort?: number;
  /** @default true */
  readonly leaderElection?: boolean;
  /** @default - `namespace` */
  readonly leaseNamespace?: string;
  /** Deadline of every API request, in seconds. @default 30 */
  readonly requestTimeout?: number;
  /** Restart a watch that receives nothing for this long, in seconds. @default 150 */
  readonly watchIdleTimeout?: number;
  /** /healthz fails when the workers make no progress for this long, in seconds. @default 300 */
  readonly stallTimeout?: number;
  /** @default 'info' */
  readonly logLevel?: string;
  /** The cluster's DNS domain, for the node agent. @default CLUSTER_DOMAIN, else 'cluster.local' */
  readonly clusterDomain?: string;
  /** containerd, k3s, rke2 or cri-o. @default NODE_RUNTIME, then cdk8s.yaml `nodeRuntime`, else 'containerd' */
  readonly nodeRuntime?: string;
  /** The node agent's image. @default NODE_AGENT_IMAGE, then cdk8s.yaml `nodeAgentImage`, else busybox pinned */
  readonly nodeAgentImage?: string;
  /** The image of the streaming fill: the controller's own. @default FILL_IMAGE, then cdk8s.yaml `fillImage`, else none */
  readonly fillImage?: string;
  /** Take mirrors over from the original mirror-operator (docs/migration.md). @default TAKEOVER, else false */
  readonly takeover?: boolean;
}

/** A port the controller cannot listen on is the user's to fix: one line, exit 2. */
async function listening<T>(
  metrics: BindAddress | undefined,
  probes: BindAddress | undefined,
  start: () => Promise<T>,
): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
    if (e.code !== 'EADDRINUSE' && e.code !== 'EACCES' && e.code !== 'EADDRNOTAVAIL') throw err;
    const [flag, addr] =
      probes && e.port === probes.port && e.port !== metrics?.port
        ? ['--health-probe-bind-address', probes.text]
        : ['--metrics-bind-address', metrics?.text ?? ''];
    const why =
      e.code === 'EADDRINUSE'
        ? 'address already in use'
        : e.code === 'EACCES'
          ? 'permission denied'
          : 'no such local address';
    throw new UsageError(`${flag} ${addr}: ${why}`);
  }
}

export async function controller(opts: ControllerCommandOptions): Promise<void> {
  const namespace = resolveNamespace(opts.namespace);
  const nodeAgentNamespace = resolveNodeAgentNamespace(namespace, opts.nodeAgentNamespace);
  const nodeRuntime = resolveNodeRuntime(opts.nodeRuntime);
  const nodeAgentImage = resolveNodeAgentImage(opts.nodeAgentImage);
  const fillImage = resolveFillImage(opts.fillImage);
  const policy = resolvePolicy(opts);
  const metrics = resolveMetricsBind(opts.metricsBindAddress, opts.metricsPort);
  const probes = resolveProbeBind(opts.healthProbeBindAddress, opts.probePort);
  const timings = resolveLeaderTimings(opts);
  // Flags and environment above; every other setting's default comes from the one resolver.
  const config = resolveControllerConfig({
    kubeConfig: loadKubeConfig(opts.kubeconfig),
    namespace,
    nodeAgentNamespace,
    secondsBetweenStreams: resolveSecondsBetweenStreams(opts.secondsBetweenStreams),
    ...(metrics ? { metricsPort: metrics.port, ...(metrics.host ? { metricsHost: metrics.host } : {}) } : {}),
    ...(probes ? { probePort: probes.port, ...(probes.host ? { probeHost: probes.host } : {}) } : {}),
    ...(opts.leaderElection === undefined ? {} : { leaderElection: opts.leaderElection }),
    ...(opts.leaseNamespace ? { leaseNamespace: opts.leaseNamespace } : {}),
    ...timings,
    ...(opts.requestTimeout ? { requestTimeoutSeconds: opts.requestTimeout } : {}),
    ...(opts.watchIdleTimeout ? { watchIdleTimeoutSeconds: opts.watchIdleTimeout } : {}),
    ...(opts.stallTimeout ? { stallSeconds: opts.stallTimeout } : {}),
    ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
    clusterDomain: resolveClusterDomain(opts.clusterDomain),
    nodeRuntime,
    nodeAgentImage,
    ...(fillImage ? { fillImage } : {}),
    policy,
    takeover: resolveTakeover(opts.takeover),
  });
  const running = await listening(metrics, probes, () => startController(config));
  const onSignal = (signal: NodeJS.Signals): void => {
    running.logger.info({ signal }, 'signal received');
    void running.stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    await running.done;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
