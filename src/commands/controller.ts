/**
 * `mirror-synth controller`: run the controller until SIGTERM or SIGINT, then shut down
 * cleanly (finish reconciles in flight, stop watching, release the Lease).
 */
import { startController } from '../controller/controller.js';
import { loadKubeConfig } from '../sources/cluster.js';

export interface ControllerCommandOptions {
  readonly kubeconfig?: string;
  /** Output namespace of the mirrors' children. */
  readonly namespace: string;
  /** Wait before reconnecting after the API server fails or while the CRD is missing. */
  readonly secondsBetweenStreams: number;
  /** Port of /metrics, /healthz and /readyz. */
  readonly metricsPort: number;
  /** Separate port for /healthz and /readyz. @default - the metrics port */
  readonly probePort?: number;
  readonly leaderElection: boolean;
  /** @default - `namespace` */
  readonly leaseNamespace?: string;
  /** @default 'info' */
  readonly logLevel?: string;
  /** The cluster's DNS domain, for the node agent. @default 'cluster.local' */
  readonly clusterDomain?: string;
}

export async function controller(opts: ControllerCommandOptions): Promise<void> {
  const kubeConfig = loadKubeConfig(opts.kubeconfig);
  const running = await startController({
    kubeConfig,
    namespace: opts.namespace,
    secondsBetweenStreams: opts.secondsBetweenStreams,
    metricsPort: opts.metricsPort,
    ...(opts.probePort !== undefined ? { probePort: opts.probePort } : {}),
    leaderElection: opts.leaderElection,
    ...(opts.leaseNamespace ? { leaseNamespace: opts.leaseNamespace } : {}),
    ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
    ...(opts.clusterDomain ? { clusterDomain: opts.clusterDomain } : {}),
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
