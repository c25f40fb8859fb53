/**
 * What mirror-synth gives Prometheus and Grafana: the scrape labels every query relies on, the
 * alerting rules and the dashboard. Pure data: no construct, no I/O, so the e2e suite can load
 * exactly these rules into a real Prometheus and run exactly these queries.
 *
 * Every series the rules read carries `namespace` and `mirror` labels: the PodMonitors set
 * `job` to CACHE_JOB / FRONT_JOB / VOLUME_JOB / CONTROLLER_JOB and copy the pod's `mirror` label onto the target.
 */
import { COMPONENT_LABEL, MIRROR_APP_NAME, MIRROR_LABEL, NAME_LABEL, PROJECT } from '../api/names.js';
import { CONTROLLER_NAME } from './platform.js';

/** `job` of every cache replica's /metrics (Distribution's, on the `metrics` port through the front). */
export const CACHE_JOB = MIRROR_APP_NAME;
/** `job` of every cache replica's front metrics (mtail, from the front's access log). */
export const FRONT_JOB = `${MIRROR_APP_NAME}-front`;
/**
 * `job` of every cache replica's volume exporter (node_exporter): a job of its own, so that
 * `up{job="registry-mirror"}` is Distribution's alone.
 */
export const VOLUME_JOB = `${MIRROR_APP_NAME}-volume`;
/** `job` of every cache replica's streaming fill (`spec.fill: streaming`): mirror-synth fill's /metrics. */
export const FILL_JOB = `${MIRROR_APP_NAME}-fill`;
export const KEEPER_JOB = `${MIRROR_APP_NAME}-keeper`;
/** `job` of every cache replica's warm container (`spec.cache.pinned`): mirror-synth warm's /metrics. */
export const WARM_JOB = `${MIRROR_APP_NAME}-warm`;
/** `job` of the controller's /metrics. */
export const CONTROLLER_JOB = CONTROLLER_NAME;
/** The label Grafana's dashboard sidecar looks for (kube-prometheus-stack's default). */
export const GRAFANA_DASHBOARD_LABEL = 'grafana_dashboard';

export interface AlertRule {
  readonly alert: string;
  /**
   * What the alert measures, per `namespace` and `mirror` (or per controller): a query that
   * returns a series whenever the metrics exist, firing or not. The e2e suite runs it.
   */
  readonly measure: string;
  /** The condition on `measure`, e.g. `== 0`, `< 0.2`. */
  readonly condition: string;
  readonly for: string;
  readonly severity: 'critical' | 'warning';
  readonly summary: string;
  /** What is wrong and the next step; `{{ $labels.mirror }}` names the mirror. */
  readonly description: string;
  /** Where the series come from, when not from mirror-synth's own pods. */
  readonly source?: 'kube-state-metrics';
}

const by = `by (namespace, ${MIRROR_LABEL})`;
const byPod = `by (namespace, ${MIRROR_LABEL}, pod)`;
const cache = `job="${CACHE_JOB}"`;
const volume = `job="${VOLUME_JOB}"`;
const mirrorRef = 'mirror {{ $labels.mirror }} (namespace {{ $labels.namespace }})';
const pods = 'kubectl -n {{ $labels.namespace }} get pods -l mirror={{ $labels.mirror }}';

/**
 * The share of the requests reaching Distribution (`selector`) that failed with a 5xx over
 * `window`, per mirror. 0, not nothing, while no request failed (there is no 5xx series until
 * the first), and 0, not NaN (0/0), while a mirror served no request at all in the window: an
 * idle mirror has no errors, and its alert measure and dashboard panel must say so.
 */
export function errorRatio(selector: string, window: string): string {
  const total = `sum ${by} (rate(registry_http_requests_total{${selector}}[${window}]))`;
  const failed = `sum ${by} (rate(registry_http_requests_total{${selector},code=~"5.."}[${window}]))`;
  return `${failed} / (${total} > 0) or 0 * ${total}`;
}

/**
 * The requests the upstream answered 429 Too Many Requests, per mirror, as Distribution counts its
 * own answers (`agg` of `registry_http_requests_total{code="429"}` over `window`): Distribution
 * never limits a client itself, and relays an upstream's 429 as its own (errcode TOOMANYREQUESTS),
 * through either fill. 0, not nothing, for a mirror that was never refused (no code="429" series).
 */
export function upstreamRateLimited(selector: string, agg: 'rate' | 'increase', window: string): string {
  const limited = `sum ${by} (${agg}(registry_http_requests_total{${selector},code="429"}[${window}]))`;
  return `${limited} or 0 * sum ${by} (${agg}(registry_http_requests_total{${selector}}[${window}]))`;
}

/** The mirror alerts (group `registry-mirror`). */
export const MIRROR_ALERTS: readonly AlertRule[] = [
  {
    alert: 'RegistryMirrorDown',
    measure: `max ${by} (up{${cache}})`,
    condition: '== 0',
    for: '5m',
    severity: 'critical',
    summary: 'No cache replica of a registry mirror is up.',
    description:
      `No replica of ${mirrorRef} has answered a scrape for 5 minutes. Nodes fall back to the ` +
      `upstream, so pulls are slower and count against its rate limit. Next: \`${pods}\`, then ` +
      '`kubectl logs` of the registry container (a crash at start usually means the upstream ' +
      'was unreachable or the volume is full).',
  },
  {
    alert: 'RegistryMirrorNodeAgentMissing',
    measure:
      `label_replace(kube_daemonset_status_desired_number_scheduled{daemonset=~"${MIRROR_APP_NAME}-.+"} ` +
      `- kube_daemonset_status_number_ready{daemonset=~"${MIRROR_APP_NAME}-.+"}, ` +
      `"${MIRROR_LABEL}", "$1", "daemonset", "${MIRROR_APP_NAME}-(.+)")`,
    condition: '> 0',
    for: '15m',
    severity: 'warning',
    summary: 'The node agent of a registry mirror is not ready on every node.',
    description:
      `{{ $value }} node(s) have no ready node agent of ${mirrorRef}: their containerd does not ` +
      'use the mirror. Next: `kubectl -n {{ $labels.namespace }} get pods -l mirror={{ $labels.mirror }} ' +
      "-o wide` to find the nodes, then check taints against the mirror's spec.tolerations and " +
      'nodeSelector.',
    source: 'kube-state-metrics',
  },
  {
    alert: 'RegistryMirrorUpstreamErrors',
    measure: errorRatio(cache, '10m'),
    condition: '> 0.05',
    for: '10m',
    severity: 'warning',
    summary: 'A registry mirror fails more than 5% of pulls.',
    description:
      `{{ $value | humanizePercentage }} of requests to ${mirrorRef} failed with a 5xx for 10 ` +
      "minutes: the upstream is unreachable or refuses the mirror's credentials, or the cache " +
      "volume fails. Nodes retry the upstream directly. Next: the registry container's log " +
      '(`err.detail` names the upstream error), then the credentials Secret.',
  },
  {
    alert: 'RegistryMirrorUpstreamRateLimited',
    measure: upstreamRateLimited(cache, 'increase', '15m'),
    condition: '> 0',
    for: '5m',
    severity: 'warning',
    summary: 'The upstream of a registry mirror rate-limits it (429 Too Many Requests).',
    description:
      `The upstream of ${mirrorRef} answered {{ $value | humanize }} of its requests in the last 15 ` +
      'minutes with 429 Too Many Requests: images it has not cached fail through the mirror, and ' +
      'nodes falling back to the upstream are likely limited too. Next: give the mirror ' +
      "credentials of an account with a higher limit (spec.credentialsSecret; if it has one, check that account's limit), " +
      'or pull less often from that upstream (fewer new images or tags, fewer nodes pulling them at once).',
  },
  {
    alert: 'RegistryMirrorHitRatioLow',
    // Manifests only: the front (nginx) serves repeated digest requests, blobs above all, from
    // its own cache without Distribution seeing them, so Distribution's blob ratio understates
    // hits. Manifests by tag always reach Distribution, so their ratio is the whole truth.
    measure:
      `sum ${by} (rate(registry_proxy_hits_total{${cache},type="manifest"}[1h])) ` +
      `/ sum ${by} (rate(registry_proxy_requests_total{${cache},type="manifest"}[1h]))`,
    condition: `< 0.2 and on (namespace, ${MIRROR_LABEL}) sum ${by} (increase(registry_proxy_requests_total{${cache},type="manifest"}[1h])) > 100`,
    for: '30m',
    severity: 'warning',
    summary: 'A registry mirror fetches almost every manifest from the upstream.',
    description:
      `Only {{ $value | humanizePercentage }} of the manifests ${mirrorRef} served in the last ` +
      'hour came from its cache. The cache was lost (a new volume, a TTL shorter than the pull ' +
      'interval) or replicas do not share content (each replica has its own volume). Next: ' +
      `\`${pods}\` for restarts and new PVCs, then compare replicas in the dashboard.`,
  },
  {
    alert: 'RegistryMirrorVolumeNearlyFull',
    measure: `min ${byPod} (node_filesystem_avail_bytes{${volume}} / node_filesystem_size_bytes{${volume}})`,
    condition: '< 0.1',
    for: '15m',
    severity: 'warning',
    summary: 'The cache volume of a registry mirror is more than 90% full.',
    description:
      `The cache volume of {{ $labels.pod }}, a replica of ${mirrorRef}, has ` +
      '{{ $value | humanizePercentage }} free. When it is full the cache fails pulls it has not ' +
      'cached (Distribution frees what it fetched only after its 7-day proxy TTL). Next: ' +
      '`kubectl -n {{ $labels.namespace }} get pvc cache-{{ $labels.pod }}` and expand it where ' +
      'its StorageClass allows volume expansion.',
  },
];

/** The controller alerts (group `mirror-synth-controller`). */
export const CONTROLLER_ALERTS: readonly AlertRule[] = [
  {
    alert: 'MirrorSynthControllerDown',
    measure: `max by (namespace) (up{job="${CONTROLLER_JOB}"})`,
    condition: '== 0',
    for: '5m',
    severity: 'warning',
    summary: 'The mirror-synth controller does not answer scrapes.',
    description:
      'The controller in namespace {{ $labels.namespace }} has not answered a scrape for 5 ' +
      'minutes: RegistryMirror changes are not applied (running mirrors keep working). Next: ' +
      `\`kubectl -n {{ $labels.namespace }} get pods -l ${NAME_LABEL}=${PROJECT},${COMPONENT_LABEL}=controller\` and its log.`,
  },
  {
    alert: 'MirrorSynthReconcileErrors',
    measure: `sum by (namespace, type) (rate(mirror_synth_errors_total{job="${CONTROLLER_JOB}"}[10m]))`,
    condition: '> 0',
    for: '15m',
    severity: 'warning',
    summary: 'The mirror-synth controller keeps failing.',
    description:
      'The controller in namespace {{ $labels.namespace }} has had `{{ $labels.type }}` errors ' +
      'for 15 minutes. Next: its log (one JSON line per error, with the mirror), then ' +
      '`kubectl get registrymirrors -A` for mirrors that are not Ready.',
  },
  {
    alert: 'RegistryMirrorStalled',
    measure: `max ${by} (mirror_synth_mirror_condition{job="${CONTROLLER_JOB}",condition="Stalled"})`,
    condition: '== 1',
    for: '5m',
    severity: 'warning',
    summary: 'A RegistryMirror needs a person: the controller stopped retrying it.',
    description:
      `${mirrorRef} is Stalled: its spec or credentials Secret is wrong and retrying will not ` +
      'help. Next: `kubectl -n {{ $labels.namespace }} describe registrymirror {{ $labels.mirror }}` ' +
      "(the Stalled condition's message names the field or Secret to fix).",
  },
];

/** One rule as Prometheus reads it. */
export function ruleObject(rule: AlertRule): Record<string, unknown> {
  return {
    alert: rule.alert,
    expr: `${rule.measure} ${rule.condition}`,
    for: rule.for,
    labels: { severity: rule.severity },
    annotations: { summary: rule.summary, description: rule.description },
  };
}

/** The `spec` of a PrometheusRule (and the body of a Prometheus rule file) for these groups. */
export function ruleGroups(groups: Record<string, readonly AlertRule[]>): { groups: Record<string, unknown>[] } {
  return {
    groups: Object.entries(groups).map(([name, rules]) => ({ name, rules: rules.map(ruleObject) })),
  };
}
