/**
 * From validated mirror specs to Kubernetes objects: one cdk8s chart per mirror (one App
 * each, so synthesis stays linear in the number of mirrors), objects sorted into apply order
 * with sorted keys. The CLI (through dist.ts) and the controller both synthesize here.
 */
import { App, Chart } from 'cdk8s';

import { SpecError } from '../api/errors.js';
import { compareForApply, type KubeObject, sortKeys } from '../api/kube-object.js';
import type { MirrorInput } from '../api/validate.js';
import { ControllerManifests, type ControllerManifestsProps } from '../construct/controller-manifests.js';
import { fillImageProblem } from '../construct/images.js';
import { ControllerMonitoring, MirrorAlerts, MirrorDashboard, MirrorPodMonitor } from '../construct/monitoring.js';
import { addMirrorNamespaces } from '../construct/namespace.js';
import { type NodeRuntime, resolveNamespaces } from '../construct/platform.js';
import { RegistryMirror } from '../construct/registry-mirror.js';

export interface SynthOptions {
  /**
   * Namespace of every child.
   * @default 'kube-extra'
   */
  readonly namespace?: string;
  /**
   * Namespace of the node agents (the one that must admit Pod Security `privileged`).
   * @default `<namespace>-node`
   */
  readonly nodeAgentNamespace?: string;
  /**
   * The cluster's DNS domain.
   * @default 'cluster.local'
   */
  readonly clusterDomain?: string;
  /**
   * The cluster's node container runtime (what the node agents write, and where).
   * @default 'containerd'
   */
  readonly nodeRuntime?: NodeRuntime;
  /**
   * The node agent's image: the platform's choice, never a spec's.
   * @default DEFAULT_NODE_AGENT_IMAGE
   */
  readonly nodeAgentImage?: string;
  /**
   * The mirror-synth image mirrors with `spec.fill: streaming` run their fill from.
   * @default - none: such a mirror is a SpecError naming its file, name and field
   */
  readonly fillImage?: string;
}

/** Objects in apply order (api/kube-object.ts), as the controller applies them. */
export const compareObjects = compareForApply;

/** A chart holding one mirror's children. Its id is the mirror's name. */
export class MirrorChart extends Chart {
  public readonly mirror: RegistryMirror;
  constructor(scope: App, input: MirrorInput, opts: SynthOptions & { credentialsHash?: string }) {
    super(scope, input.name, { disableResourceNameHashes: true });
    const problem = fillImageProblem(input, opts.fillImage);
    if (problem) throw new SpecError([problem]);
    this.mirror = new RegistryMirror(this, 'Mirror', {
      ...input.spec,
      name: input.name,
      namespace: opts.namespace,
      nodeAgentNamespace: opts.nodeAgentNamespace,
      credentialsHash: opts.credentialsHash,
      clusterDomain: opts.clusterDomain,
      nodeRuntime: opts.nodeRuntime,
      nodeAgentImage: opts.nodeAgentImage,
      fillImage: opts.fillImage,
    });
  }
}

/** A chart's objects as plain JSON with sorted keys, in apply order. */
export function chartObjects(chart: Chart): KubeObject[] {
  return (chart.toJson() as KubeObject[]).map((o) => sortKeys(o)).sort(compareObjects);
}

/** One mirror's children as plain JSON, in apply order. */
export function synthesizeMirror(
  input: MirrorInput,
  opts: SynthOptions & { credentialsHash?: string } = {},
): KubeObject[] {
  return chartObjects(new MirrorChart(new App(), input, opts));
}

/** The Namespace objects: the output namespace (`restricted`) and the node agent namespace (`privileged`). */
export function namespaceObjects(opts: Pick<SynthOptions, 'namespace' | 'nodeAgentNamespace'> = {}): KubeObject[] {
  const { namespace, nodeAgentNamespace } = resolveNamespaces(opts);
  const chart = new Chart(new App(), 'namespace');
  addMirrorNamespaces(chart, namespace, nodeAgentNamespace);
  return chartObjects(chart);
}

/** The controller's own manifests as plain JSON, in apply order. */
export function controllerObjects(props: ControllerManifestsProps): KubeObject[] {
  const chart = new Chart(new App(), 'controller', { disableResourceNameHashes: true });
  new ControllerManifests(chart, 'Controller', props);
  return chartObjects(chart);
}

/**
 * dist/monitoring/'s objects for these mirrors: a PodMonitor each, the alerts and the
 * dashboard, in the output namespace.
 */
export function monitoringObjects(mirrorNames: readonly string[], opts: SynthOptions = {}): KubeObject[] {
  const { namespace } = resolveNamespaces(opts);
  const chart = new Chart(new App(), 'monitoring', { disableResourceNameHashes: true });
  for (const name of mirrorNames) new MirrorPodMonitor(chart, name, { name, namespace });
  new MirrorAlerts(chart, 'Alerts', { namespace });
  new MirrorDashboard(chart, 'Dashboard', { namespace });
  return chartObjects(chart);
}

/** The controller's PodMonitor and PrometheusRule (`controller-manifests --monitoring`). */
export function controllerMonitoringObjects(namespace: string): KubeObject[] {
  const chart = new Chart(new App(), 'controller-monitoring', { disableResourceNameHashes: true });
  new ControllerMonitoring(chart, 'Monitoring', { namespace });
  return chartObjects(chart);
}
