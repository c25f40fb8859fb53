/**
 * `mirror-synth controller`: run the controller until SIGTERM or SIGINT, then shut down
 * cleanly (finish reconciles in flight, stop watching, release the Lease).
 */
import { startController } from '../controller/controller.js';
import { loadKubeConfig } from '../sources/kubeconfig.js';
import {
  resolveClusterDomain,
  resolveMetricsPort,
  resolveNamespace,
  resolveNodeRuntime,
  resolveSecondsBetweenStreams,
} from './options.js';

/** The controller command's flags as given (unresolved). */
export interface ControllerCommandOptions {
  readonly kubeconfig?: string;
  /** Output namespace of the mirrors' children. @default NAMESPACE, else 'kube-extra' */
  readonly namespace?: string;
  /** Wait before reconnecting after the API server fails or while the CRD is missing. @default SECONDS_BETWEEN_STREAMS, else 30 */
  readonly secondsBetweenStreams?: number;
  /** Port of /metrics, /healthz and /readyz. @default 8080 */
  readonly metricsPort?: number;
  /** Separate port for /healthz and /readyz. @default - the metrics port */
  readonly probePort?: number;
  /** @default true */
  readonly leaderElection?: boolean;
  /** @default - `namespace` */
  readonly leaseNamespace?: string;
  /** @default 'info' */
  readonly logLevel?: string;
  /** The cluster's DNS domain, for the node agent. @default CLUSTER_DOMAIN, else 'cluster.local' */
  readonly clusterDomain?: string;
  /** containerd, k3s, rke2 or cri-o. @default NODE_RUNTIME, then cdk8s.yaml `nodeRuntime`, else 'containerd' */
  readonly nodeRuntime?: string;
}

export async function controller(opts: ControllerCommandOptions): Promise<void> {
  const namespace = resolveNamespace(opts.namespace);
  const nodeRuntime = resolveNodeRuntime(opts.nodeRuntime);
  const running = await startController({
    kubeConfig: loadKubeConfig(opts.kubeconfig),
    namespace,
    secondsBetweenStreams: resolveSecondsBetweenStreams(opts.secondsBetweenStreams),
    metricsPort: resolveMetricsPort(opts.metricsPort),
    ...(opts.probePort !== undefined ? { probePort: opts.probePort } : {}),
    leaderElection: opts.leaderElection ?? true,
    ...(opts.leaseNamespace ? { leaseNamespace: opts.leaseNamespace } : {}),
    ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
    clusterDomain: resolveClusterDomain(opts.clusterDomain),
    nodeRuntime,
  });
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
