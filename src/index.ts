/** mirror-synth as a library: the construct, the schema, the validator and the synthesizer. */
export {
  RegistryMirror,
  type RegistryMirrorProps,
  MIRROR_LABEL,
  COMPONENT_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY,
  CREDENTIALS_HASH_ANNOTATION,
  CONFIG_HASH_ANNOTATION,
  DEFAULT_NAMESPACE,
  REGISTRY_IMAGE,
  NODE_AGENT_IMAGE,
  NODE_AGENT_SCRIPT,
} from './mirror.js';
export {
  buildApp,
  synthesizeMirror,
  renderDist,
  toYaml,
  compareObjects,
  MirrorChart,
  type SynthOptions,
} from './app.js';
export { registryMirrorCrd } from './crd.js';
export { parseMirrorResource, parseMirrorFile, loadMirrorDir, checkUniqueNames, type MirrorInput } from './spec.js';
export {
  MirrorSpecSchema,
  RegistryMirrorSchema,
  type MirrorSpec,
  type MirrorStatus,
  type MirrorCondition,
  API_GROUP,
  API_VERSION,
  KIND,
  PLURAL,
} from './schema.js';
export { SpecError, UsageError, StaleOutputError, type SpecProblem } from './errors.js';
export { renderDistributionConfig, distributionConfig } from './distribution.js';
export { upstreamServerUrl, containerdHost } from './upstream.js';
export type { KubeObject } from './kube-object.js';
