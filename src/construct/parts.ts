/**
 * What the RegistryMirror construct resolves once and hands to each of its parts (the cache,
 * the node agent). Parts add their objects directly under the RegistryMirror, with the
 * construct IDs it has always had, so the construct tree (a public contract) is unchanged.
 */
import type { Construct } from 'constructs';

import type { MirrorSpec } from '../api/schema.js';
import type { k8s } from './k8s.js';

export interface MirrorParts {
  /** The RegistryMirror construct: the scope of every child. */
  readonly scope: Construct;
  /** The mirror's name (metadata.name of the RegistryMirror). */
  readonly mirrorName: string;
  /** `registry-mirror-<name>`. */
  readonly resourceName: string;
  /** The output namespace: the cache's. */
  readonly namespace: string;
  /** The node agent's namespace (Pod Security `privileged`). */
  readonly nodeAgentNamespace: string;
  readonly spec: Readonly<MirrorSpec>;
  /** Labels of a child of this component (`cache`, `node-agent`). */
  labelsFor(component: string): Record<string, string>;
  /** The immutable selector of a component's pods: `mirror=<name>` plus the component. */
  selectorFor(component: string): Record<string, string>;
  readonly imagePullSecrets?: k8s.LocalObjectReference[];
}
