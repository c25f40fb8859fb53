/**
 * The Grafana dashboard for registry mirrors, as JSON for a ConfigMap the Grafana sidecar loads.
 * Pure data. Every panel reads Prometheus through the `datasource` variable, which the
 * dashboard defines itself (type `datasource`), so it resolves in any Grafana without an
 * import step: a panel that names `${DS_PROMETHEUS}` without defining it shows nothing.
 */
import { CACHE_JOB, errorRatio, FILL_JOB, FRONT_JOB, upstreamRateLimited, VOLUME_JOB } from './monitoring-rules.js';

export interface DashboardPanel {
  readonly title: string;
  readonly unit: string;
  readonly description: string;
  /** One query per series group; may use $namespace, $mirror and $__rate_interval. */
  readonly targets: readonly { readonly expr: string; readonly legend: string }[];
}

const sel = `job="${CACHE_JOB}",namespace=~"$namespace",mirror=~"$mirror"`;
const front = `job="${FRONT_JOB}",namespace=~"$namespace",mirror=~"$mirror"`;
const fillSel = `job="${FILL_JOB}",namespace=~"$namespace",mirror=~"$mirror"`;
const volumeSel = `job="${VOLUME_JOB}",namespace=~"$namespace",mirror=~"$mirror"`;
/** `by (namespace, mirror, ...extra)`: every panel keeps one series per mirror. */
const by = (...extra: string[]): string => `by (${['namespace', 'mirror', ...extra].join(', ')})`;

export const DASHBOARD_PANELS: readonly DashboardPanel[] = [
  {
    title: 'Cache hit ratio',
    unit: 'percentunit',
    description:
      'Blobs: the share of blob requests answered without fetching from the upstream, by the front (nginx) from its cache or by Distribution from its storage. Manifests: the share of manifest requests reaching Distribution it served from its storage (tags always reach it).',
    targets: [
      {
        expr:
          `1 - (sum ${by()} (rate(registry_proxy_requests_total{${sel},type="blob"}[$__rate_interval])) ` +
          `- sum ${by()} (rate(registry_proxy_hits_total{${sel},type="blob"}[$__rate_interval]))) ` +
          `/ sum ${by()} (rate(registry_mirror_front_requests_total{${front},kind="blob",code=~"2.."}[$__rate_interval]))`,
        legend: '{{mirror}} blob',
      },
      {
        expr:
          `sum ${by()} (rate(registry_proxy_hits_total{${sel},type="manifest"}[$__rate_interval])) ` +
          `/ sum ${by()} (rate(registry_proxy_requests_total{${sel},type="manifest"}[$__rate_interval]))`,
        legend: '{{mirror}} manifest',
      },
    ],
  },
  {
    title: 'Bytes served vs fetched upstream',
    unit: 'Bps',
    description: 'What the front sent to nodes against what Distribution pulled from the upstream.',
    targets: [
      {
        expr: `sum ${by()} (rate(registry_mirror_front_sent_bytes_total{${front}}[$__rate_interval]))`,
        legend: '{{mirror}} served',
      },
      {
        expr: `sum ${by()} (rate(registry_proxy_pulled_bytes_total{${sel}}[$__rate_interval]))`,
        legend: '{{mirror}} from upstream',
      },
    ],
  },
  {
    title: 'Bytes saved',
    unit: 'Bps',
    description:
      'Bytes sent to nodes less bytes fetched from the upstream: what nodes would have fetched from the upstream without the mirror, less what the mirror fetched for them. Negative while the mirror fetches more than it serves (a cold cache).',
    targets: [
      {
        expr:
          `sum ${by()} (rate(registry_mirror_front_sent_bytes_total{${front}}[$__rate_interval])) ` +
          `- sum ${by()} (rate(registry_proxy_pulled_bytes_total{${sel}}[$__rate_interval]))`,
        legend: '{{mirror}}',
      },
    ],
  },
  {
    title: 'Upstream rate-limited',
    unit: 'reqps',
    description:
      "Requests the upstream answered 429 Too Many Requests, as Distribution relayed them (0 while it limits nothing). Nodes fall back to the upstream, which likely limits them too: give the mirror credentials with a higher limit (the RegistryMirrorUpstreamRateLimited alert's next step).",
    targets: [{ expr: upstreamRateLimited(sel, 'rate', '$__rate_interval'), legend: '{{mirror}}' }],
  },
  {
    title: 'Front cache (nginx)',
    unit: 'reqps',
    description:
      "Requests for digests (blobs, manifests by digest) by how the front's cache answered: HIT from its cache, MISS fetched through Distribution (one request per digest however many nodes wait for it), EXPIRED, STALE, UPDATING.",
    targets: [
      {
        expr: `sum ${by('kind', 'cache')} (rate(registry_mirror_front_requests_total{${front},cache!="NONE"}[$__rate_interval]))`,
        legend: '{{mirror}} {{kind}} {{cache}}',
      },
    ],
  },
  {
    title: 'Requests by status',
    unit: 'reqps',
    description:
      'HTTP requests the front answered to nodes, by status code. A 404 is either an image the upstream does not have or a fallback: the front answers 404 when Distribution fails, so nodes pull from the upstream.',
    targets: [
      {
        expr: `sum ${by('code')} (rate(registry_mirror_front_requests_total{${front}}[$__rate_interval]))`,
        legend: '{{mirror}} {{code}}',
      },
    ],
  },
  {
    title: 'Errors (5xx)',
    unit: 'percentunit',
    description:
      'Share of the requests reaching Distribution that failed (upstream unreachable or refused, storage errors). Nodes saw a 404 for these and pulled from the upstream.',
    targets: [
      {
        expr: errorRatio(sel, '$__rate_interval'),
        legend: '{{mirror}}',
      },
    ],
  },
  {
    title: 'Latency',
    unit: 's',
    description: 'Request duration by handler (manifest, blob), 50th and 99th percentile.',
    targets: [
      {
        expr:
          `histogram_quantile(0.5, sum ${by('handler', 'le')} ` +
          `(rate(registry_http_request_duration_seconds_bucket{${sel}}[$__rate_interval])))`,
        legend: '{{mirror}} {{handler}} p50',
      },
      {
        expr:
          `histogram_quantile(0.99, sum ${by('handler', 'le')} ` +
          `(rate(registry_http_request_duration_seconds_bucket{${sel}}[$__rate_interval])))`,
        legend: '{{mirror}} {{handler}} p99',
      },
    ],
  },
  {
    title: 'Streaming fill requests',
    unit: 'reqps',
    description:
      "Mirrors with spec.fill streaming: the front's cache misses for digests by how the fill served them. hit: a blob from Distribution's storage; miss: a blob Distribution fetched from the upstream; distribution: a manifest by digest (Distribution does not say which); peer: from the replica owning the digest; coalesced: joined a transfer in progress; fallback: an error the node falls back on; pass_through: HEADs and probes.",
    targets: [
      {
        expr: `sum ${by('result')} (rate(registry_mirror_fill_requests_total{${fillSel}}[$__rate_interval]))`,
        legend: '{{mirror}} {{result}}',
      },
    ],
  },
  {
    title: 'Streaming fill in flight',
    unit: 'none',
    description:
      'Mirrors with spec.fill streaming: transfers in progress (one per digest) and the clients waiting on a transfer another request started.',
    targets: [
      {
        expr: `sum ${by()} (registry_mirror_fill_transfers_in_flight{${fillSel}})`,
        legend: '{{mirror}} transfers',
      },
      { expr: `sum ${by()} (registry_mirror_fill_waiters{${fillSel}})`, legend: '{{mirror}} waiters' },
    ],
  },
  {
    title: 'Replicas up',
    unit: 'none',
    description: 'Cache replicas answering scrapes.',
    targets: [{ expr: `sum ${by()} (up{${sel}})`, legend: '{{mirror}}' }],
  },
  {
    title: 'Cache volume used',
    unit: 'percentunit',
    description:
      "Used share of each replica's cache volume, from the node_exporter in its pod (space reserved for root counts as used).",
    targets: [
      {
        expr:
          `max ${by('pod')} (1 - node_filesystem_avail_bytes{${volumeSel}} ` +
          `/ node_filesystem_size_bytes{${volumeSel}})`,
        legend: '{{mirror}} {{pod}}',
      },
    ],
  },
];

export const DASHBOARD_UID = 'mirror-synth-registry-mirrors';

const ds = { type: 'prometheus', uid: '${datasource}' };

/** A multi-value template variable filled by a label_values() query through the datasource variable. */
function queryVariable(name: string, label: string, query: string): Record<string, unknown> {
  return {
    name,
    label,
    type: 'query',
    datasource: ds,
    query: { query, refId: name },
    definition: query,
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: {},
    refresh: 2,
    sort: 1,
  };
}

/** The dashboard JSON model (Grafana 10/11 schema). */
export function dashboard(): Record<string, unknown> {
  return {
    uid: DASHBOARD_UID,
    title: 'Registry mirrors',
    description: 'mirror-synth registry mirrors: hit ratio, traffic, errors, latency, volume.',
    tags: ['mirror-synth', 'registry'],
    editable: false,
    schemaVersion: 39,
    timezone: 'utc',
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
          refresh: 1,
        },
        queryVariable('namespace', 'Namespace', `label_values(up{job="${CACHE_JOB}"}, namespace)`),
        queryVariable('mirror', 'Mirror', `label_values(up{job="${CACHE_JOB}",namespace=~"$namespace"}, mirror)`),
      ],
    },
    panels: DASHBOARD_PANELS.map((p, i) => ({
      id: i + 1,
      type: 'timeseries',
      title: p.title,
      description: p.description,
      datasource: ds,
      gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
      fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
      options: { legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull'] } },
      targets: p.targets.map((t, j) => ({
        refId: String.fromCharCode(65 + j),
        datasource: ds,
        expr: t.expr,
        legendFormat: t.legend,
      })),
    })),
  };
}
