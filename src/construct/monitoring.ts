/**
 * Monitoring objects for the Prometheus Operator and Grafana: a PodMonitor per mirror's cache
 * and for the controller, PrometheusRules with the alerts of monitoring-rules.ts, and the
 * dashboard of dashboard.ts as a ConfigMap the Grafana sidecar loads. They need the
 * monitoring.coreos.com CRDs, so they are written apart (dist/monitoring/, or
 * `controller-manifests --monitoring`): a cluster without the operator still applies dist/.
 */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';

import { childName } from '../api/children.js';
import {
  COMPONENT_LABEL,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  MIRROR_APP_NAME,
  MIRROR_LABEL,
  NAME_LABEL,
  PROJECT,
} from '../api/names.js';
import { dashboard, DASHBOARD_UID } from './dashboard.js';
import {
  CACHE_JOB,
  CONTROLLER_ALERTS,
  CONTROLLER_JOB,
  FILL_JOB,
  FRONT_JOB,
  GRAFANA_DASHBOARD_LABEL,
  KEEPER_JOB,
  MIRROR_ALERTS,
  ruleGroups,
  VOLUME_JOB,
  WARM_JOB,
} from './monitoring-rules.js';
import {
  FILL_METRICS_PORT_NAME,
  FRONT_METRICS_PORT_NAME,
  KEEPER_METRICS_PORT_NAME,
  VOLUME_METRICS_PORT_NAME,
  WARM_PORT_NAME,
} from './ports.js';

export const MONITORING_API_VERSION = 'monitoring.coreos.com/v1';
/** Scrape interval of every PodMonitor. */
export const SCRAPE_INTERVAL = '30s';

export interface MirrorPodMonitorProps {
  /** The mirror's name. */
  readonly name: string;
  readonly namespace: string;
}

/**
 * Scrapes every cache replica of one mirror on its `metrics` port (Distribution's metrics, which
 * the front passes on from Distribution's debug server, `job` registry-mirror), its `front-metrics` port (mtail, `job`
 * registry-mirror-front) and its `volume-metrics` port (the volume's node_exporter, `job`
 * registry-mirror-volume), and with `spec.fill: streaming` its `fill-metrics` port (mirror-synth
 * fill, `job` registry-mirror-fill), with the pod's `mirror` label on every series. A job each, so
 * `up{job="registry-mirror"}` is Distribution's alone (0 too while the front is down).
 */
export class MirrorPodMonitor extends Construct {
  public readonly podMonitor: ApiObject;
  constructor(scope: Construct, id: string, props: MirrorPodMonitorProps) {
    super(scope, id);
    this.podMonitor = new ApiObject(this, 'PodMonitor', {
      apiVersion: MONITORING_API_VERSION,
      kind: 'PodMonitor',
      metadata: {
        name: childName(props.name),
        namespace: props.namespace,
        labels: {
          [MIRROR_LABEL]: props.name,
          [NAME_LABEL]: MIRROR_APP_NAME,
          [COMPONENT_LABEL]: 'cache',
          [MANAGED_BY_LABEL]: MANAGED_BY,
        },
      },
      spec: {
        selector: { matchLabels: { [MIRROR_LABEL]: props.name, [COMPONENT_LABEL]: 'cache' } },
        podTargetLabels: [MIRROR_LABEL],
        podMetricsEndpoints: [
          endpoint('metrics', CACHE_JOB),
          endpoint(FRONT_METRICS_PORT_NAME, FRONT_JOB),
          endpoint(VOLUME_METRICS_PORT_NAME, VOLUME_JOB),
          // spec.fill streaming only: a pod without the port (spec.fill whole) gives no target
          endpoint(FILL_METRICS_PORT_NAME, FILL_JOB),
          // with a mirror-synth image only (the size bound's keeper): a pod without the port gives no target
          endpoint(KEEPER_METRICS_PORT_NAME, KEEPER_JOB),
          // spec.cache.pinned only: registry_mirror_pinned_* (the port also serves /status)
          endpoint(WARM_PORT_NAME, WARM_JOB),
        ],
      },
    });
  }
}

export interface MonitoringRulesProps {
  readonly namespace: string;
}

/** The mirror alerts, for every mirror at once (each alert is per `namespace` and `mirror`). */
export class MirrorAlerts extends Construct {
  constructor(scope: Construct, id: string, props: MonitoringRulesProps) {
    super(scope, id);
    new ApiObject(this, 'PrometheusRule', {
      apiVersion: MONITORING_API_VERSION,
      kind: 'PrometheusRule',
      metadata: { name: MIRROR_APP_NAME, namespace: props.namespace, labels: ownLabels('alerts') },
      spec: ruleGroups({ [MIRROR_APP_NAME]: MIRROR_ALERTS }),
    });
  }
}

/** The dashboard as a ConfigMap labelled `grafana_dashboard: "1"`. */
export class MirrorDashboard extends Construct {
  constructor(scope: Construct, id: string, props: MonitoringRulesProps) {
    super(scope, id);
    new ApiObject(this, 'ConfigMap', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: `${MIRROR_APP_NAME}-dashboard`,
        namespace: props.namespace,
        labels: { ...ownLabels('dashboard'), [GRAFANA_DASHBOARD_LABEL]: '1' },
      },
      data: { [`${DASHBOARD_UID}.json`]: JSON.stringify(dashboard(), null, 2) + '\n' },
    });
  }
}

/** The controller's PodMonitor and alerts (reconcile errors, Stalled mirrors, controller down). */
export class ControllerMonitoring extends Construct {
  constructor(scope: Construct, id: string, props: MonitoringRulesProps) {
    super(scope, id);
    const selector = { [NAME_LABEL]: PROJECT, [COMPONENT_LABEL]: 'controller' };
    const labels = { ...selector, [MANAGED_BY_LABEL]: MANAGED_BY };
    new ApiObject(this, 'PodMonitor', {
      apiVersion: MONITORING_API_VERSION,
      kind: 'PodMonitor',
      metadata: { name: CONTROLLER_JOB, namespace: props.namespace, labels },
      spec: {
        selector: { matchLabels: selector },
        podMetricsEndpoints: [endpoint('http-metrics', CONTROLLER_JOB)],
      },
    });
    new ApiObject(this, 'PrometheusRule', {
      apiVersion: MONITORING_API_VERSION,
      kind: 'PrometheusRule',
      metadata: { name: CONTROLLER_JOB, namespace: props.namespace, labels },
      spec: ruleGroups({ [CONTROLLER_JOB]: CONTROLLER_ALERTS }),
    });
  }
}

function ownLabels(component: string): Record<string, string> {
  return { [NAME_LABEL]: MIRROR_APP_NAME, [COMPONENT_LABEL]: component, [MANAGED_BY_LABEL]: MANAGED_BY };
}

/** A pod metrics endpoint whose series all carry `job=<job>` (instead of the operator's `<namespace>/<name>`). */
function endpoint(port: string, job: string): Record<string, unknown> {
  return {
    port,
    path: '/metrics',
    interval: SCRAPE_INTERVAL,
    relabelings: [{ action: 'replace', targetLabel: 'job', replacement: job }],
  };
}
