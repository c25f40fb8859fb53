/**
 * The API calls the controller makes, in one place: each write is counted (so a no-op resync
 * can be shown to write nothing) and each apply is timed.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
  type V1Pod,
} from '@kubernetes/client-node';

import { errorStatus } from '../api/kube-errors.js';
import { type KubeObject, mirrorName } from '../api/kube-object.js';
import {
  API_GROUP,
  API_VERSION,
  FIELD_MANAGER,
  KIND,
  LABEL_FIELD_MANAGER,
  MIRROR_API_VERSION,
  MIRROR_LABEL,
  PLURAL,
} from '../api/names.js';
import type { MirrorStatus } from '../api/schema.js';
import type { ControllerMetrics } from './metrics.js';
import type { MirrorEvent } from './status.js';

/** A RegistryMirror as the informer caches it. */
export interface RegistryMirrorObject extends KubernetesObject {
  spec?: unknown;
  status?: MirrorStatus;
}

/**
 * client-node serializes a known kind through its typed model, which knows fields by their
 * TypeScript names (`_exec`, `xKubernetesIntOrString`) and drops wire names it does not know.
 * loadYaml reads wire JSON (JSON is YAML) into that model, so every field survives the trip.
 */
export function toClientModel(obj: KubeObject): KubernetesObject {
  return loadYaml<KubernetesObject>(JSON.stringify(obj));
}

export class KubeClient {
  readonly objects: KubernetesObjectApi;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;

  constructor(
    readonly kubeConfig: KubeConfig,
    private readonly metrics: ControllerMetrics,
    /** Identifies this instance in Events. */
    private readonly instance: string,
  ) {
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /**
   * Server-side apply `obj` as field manager `mirror-synth`. With `force` (the default, for
   * children the controller already owns) it takes over conflicting fields; without it, an
   * object someone else created answers 409 instead of being silently repointed.
   */
  async apply(obj: KubeObject, force = true): Promise<KubernetesObject> {
    const end = this.metrics.applyDuration.startTimer({ kind: obj.kind });
    this.metrics.writesTotal.inc({ verb: 'apply', resource: obj.kind });
    try {
      return await this.objects.patch(
        toClientModel(obj),
        undefined,
        undefined,
        FIELD_MANAGER,
        force,
        PatchStrategy.ServerSideApply,
      );
    } finally {
      end();
    }
  }

  /**
   * Set `mirror=<name>` on a RegistryMirror, as its own field manager that owns nothing else, so
   * the original operator's `kubectl get ... -l mirror=<name>` lists the RegistryMirror too.
   */
  async labelMirror(name: string): Promise<void> {
    this.metrics.writesTotal.inc({ verb: 'apply', resource: KIND });
    await this.objects.patch(
      { apiVersion: MIRROR_API_VERSION, kind: KIND, metadata: { name, labels: { [MIRROR_LABEL]: name } } },
      undefined,
      undefined,
      LABEL_FIELD_MANAGER,
      false,
      PatchStrategy.ServerSideApply,
    );
  }

  /** Objects of a kind in `namespace` matching `labelSelector`. */
  async list(apiVersion: string, kind: string, namespace: string, labelSelector: string): Promise<KubernetesObject[]> {
    const res = await this.objects.list(
      apiVersion,
      kind,
      namespace,
      undefined,
      undefined,
      undefined,
      undefined,
      labelSelector,
    );
    return res.items;
  }

  /** Set a StatefulSet's replicas (a merge patch of that one field). */
  async scale(obj: KubernetesObject, replicas: number): Promise<void> {
    this.metrics.writesTotal.inc({ verb: 'patch', resource: obj.kind ?? '' });
    await this.objects.patch(
      {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        metadata: { name: obj.metadata?.name, namespace: obj.metadata?.namespace },
        spec: { replicas },
      } as KubernetesObject,
      undefined,
      undefined,
      FIELD_MANAGER,
      undefined,
      PatchStrategy.MergePatch,
    );
  }

  /**
   * Replace a Service someone else made with `desired`, in one write (PUT): selector, ports and
   * type change together, and no field of the former owner is left behind (a server-side apply
   * would keep the fields it does not set, such as another port). Keeps the cluster IP.
   */
  async replaceService(desired: KubeObject, existing: KubernetesObject): Promise<void> {
    this.metrics.writesTotal.inc({ verb: 'update', resource: 'Service' });
    const spec =
      (
        existing as {
          spec?: { clusterIP?: string; clusterIPs?: string[]; ipFamilies?: string[]; ipFamilyPolicy?: string };
        }
      ).spec ?? {};
    const body = {
      ...desired,
      metadata: { ...desired.metadata, resourceVersion: existing.metadata?.resourceVersion },
      spec: {
        ...(desired.spec as Record<string, unknown>),
        clusterIP: spec.clusterIP,
        clusterIPs: spec.clusterIPs,
        ipFamilies: spec.ipFamilies,
        ipFamilyPolicy: spec.ipFamilyPolicy,
      },
    } as KubeObject;
    await this.objects.replace(toClientModel(body), undefined, undefined, FIELD_MANAGER);
  }

  /** Pods in `namespace` matching `labelSelector` (their status tells why a workload is not ready). */
  async listPods(namespace: string, labelSelector: string): Promise<V1Pod[]> {
    return (await this.core.listNamespacedPod({ namespace, labelSelector })).items;
  }

  /** Read any object (for kinds the controller does not watch). `undefined` when it does not exist. */
  async read(obj: KubeObject): Promise<KubernetesObject | undefined> {
    try {
      return await this.objects.read({
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace },
      });
    } catch (err) {
      if (errorStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** Delete an object (in the background, or orphaning its dependents); an object already gone is fine. */
  async delete(
    obj: {
      apiVersion?: string;
      kind?: string;
      metadata?: { name?: string; namespace?: string };
    },
    propagation: 'Background' | 'Orphan' = 'Background',
  ): Promise<void> {
    this.metrics.writesTotal.inc({ verb: 'delete', resource: obj.kind ?? '' });
    try {
      await this.objects.delete(
        {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          metadata: { name: obj.metadata?.name, namespace: obj.metadata?.namespace },
        },
        undefined,
        undefined,
        undefined,
        undefined,
        propagation,
      );
    } catch (err) {
      if (errorStatus(err) !== 404) throw err;
    }
  }

  /** Replace a RegistryMirror's status through the status subresource. Returns the new resourceVersion. */
  async writeMirrorStatus(name: string, status: MirrorStatus): Promise<string | undefined> {
    this.metrics.writesTotal.inc({ verb: 'patch', resource: 'RegistryMirror/status' });
    // JSON patch (the generated client's default content type): `add` replaces /status whole.
    const res = (await this.custom.patchClusterCustomObjectStatus({
      group: API_GROUP,
      version: API_VERSION,
      plural: PLURAL,
      name,
      body: [{ op: 'add', path: '/status', value: status }],
      fieldManager: FIELD_MANAGER,
    })) as RegistryMirrorObject;
    return res.metadata?.resourceVersion;
  }

  /**
   * Record a core/v1 Event on a RegistryMirror. RegistryMirrors are cluster-scoped, so (as
   * client-go does) the Event lives in namespace `default`; `kubectl describe rm <name>` shows it.
   */
  async recordEvent(mirror: RegistryMirrorObject, event: MirrorEvent): Promise<void> {
    this.metrics.writesTotal.inc({ verb: 'create', resource: 'Event' });
    const now = new Date();
    const name = mirrorName(mirror);
    await this.core.createNamespacedEvent({
      namespace: 'default',
      body: {
        metadata: {
          name: `${name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`,
          namespace: 'default',
        },
        involvedObject: {
          apiVersion: MIRROR_API_VERSION,
          kind: KIND,
          name,
          uid: mirror.metadata?.uid,
          resourceVersion: mirror.metadata?.resourceVersion,
        },
        type: event.type,
        reason: event.reason,
        message: event.message.slice(0, 1024),
        source: { component: FIELD_MANAGER },
        reportingComponent: FIELD_MANAGER,
        reportingInstance: this.instance,
        action: 'Reconcile',
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }
}
