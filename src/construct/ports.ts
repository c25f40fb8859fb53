/**
 * The ports of the cache pod and of the controller, and their names: the constructs, the
 * NetworkPolicy and the PodMonitors read them from here. Imports nothing, so the CLI's help text
 * can read them without loading cdk8s.
 */

/** The port nodes pull from: the front (nginx) in the cache pod, and the Services. */
export const REGISTRY_PORT = 5000;

/**
 * The cache pod's `metrics` port: Distribution's Prometheus metrics, which the front (nginx) passes
 * on from Distribution's debug server (GET /metrics only; anything else there is a 404).
 */
export const REGISTRY_METRICS_PORT = 5001;

/**
 * Distribution's debug server (/metrics, /debug/health, and Go's pprof and expvar, which tell
 * anyone who reaches them about the process's memory), on the pod's loopback only: the front
 * passes /metrics on to REGISTRY_METRICS_PORT, and the registry container's probes run in the pod.
 */
export const REGISTRY_DEBUG_PORT = 5004;

/** Distribution's registry API, on the pod's loopback only: the front is its one client. */
export const DISTRIBUTION_PORT = 5002;

/**
 * The front's fill, on the pod's loopback only: where the front sends its cache misses. nginx's
 * own fill server (`spec.fill: whole`) or `mirror-synth fill` (`streaming`).
 */
export const FRONT_FILL_PORT = 5003;

/** The front's metrics: mtail's /metrics (its default port), from the front's access log, and the port's name. */
export const FRONT_METRICS_PORT = 3903;
export const FRONT_METRICS_PORT_NAME = 'front-metrics';

/** UDP, on the pod's loopback only: nginx sends its access log to mtail here (syslog). */
export const FRONT_LOG_PORT = 5514;

/**
 * The cache pod's node_exporter (the volume's size and free space): its /metrics port, on
 * node_exporter's own default, and the port's name, which the PodMonitor scrapes.
 */
export const VOLUME_METRICS_PORT = 9100;
export const VOLUME_METRICS_PORT_NAME = 'volume-metrics';

/** mirror-synth fill's /metrics (`spec.fill: streaming`), and the port's name, which the PodMonitor scrapes. */
export const FILL_METRICS_PORT = 9101;
export const FILL_METRICS_PORT_NAME = 'fill-metrics';

/** The controller's /metrics (and, unless told otherwise, /healthz and /readyz). */
export const CONTROLLER_METRICS_PORT = 8080;
/**
 * mirror-synth keeper's /metrics (the size bound, `spec.cache.maxSize`), and the port's name, which
 * the PodMonitor scrapes.
 */
export const KEEPER_METRICS_PORT = 9102;
export const KEEPER_METRICS_PORT_NAME = 'keeper-metrics';
/** UDP, on the pod's loopback only: nginx sends each digest and tag it served to the keeper here (syslog), its recency. */
export const KEEPER_LOG_PORT = 5515;
/**
 * mirror-synth warm's port (`spec.cache.pinned`): /metrics (registry_mirror_pinned_*) and /status
 * (each pinned image, JSON, read through the API server's pod proxy), and its name.
 */
export const WARM_PORT = 9103;
export const WARM_PORT_NAME = 'warm';
