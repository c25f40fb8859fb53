/** mirror-synth as a library: the construct, the schema, the validator and the synthesizer. */
export { RegistryMirror, type RegistryMirrorProps } from './construct/registry-mirror.js';
export { MirrorCache, type MirrorCacheProps } from './construct/cache.js';
export { NODE_CONFIG_DIRS, NodeAgent, type NodeAgentProps } from './construct/node-agent.js';
export { REGISTRY_IMAGE, NODE_AGENT_IMAGE } from './construct/images.js';
export { nodeAgentScript } from './construct/assets.js';
export {
  MIRROR_LABEL,
  COMPONENT_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY,
  CREDENTIALS_HASH_ANNOTATION,
  CONFIG_HASH_ANNOTATION,
  DEFAULT_NAMESPACE,
  API_GROUP,
  API_VERSION,
  KIND,
  PLURAL,
  NODE_RUNTIMES,
  DEFAULT_NODE_RUNTIME,
  type NodeRuntime,
} from './api/names.js';
export { synthesizeMirror, compareObjects, MirrorChart, type SynthOptions } from './synth/chart.js';
export { renderDist } from './synth/dist.js';
export { toYaml } from './synth/yaml.js';
export { registryMirrorCrd } from './api/crd.js';
export {
  parseMirrorResource,
  parseMirrorFile,
  checkUniqueNames,
  checkHostConflicts,
  type MirrorInput,
} from './api/validate.js';
export { loadMirrorDir } from './sources/files.js';
export {
  MirrorSpecSchema,
  RegistryMirrorSchema,
  type MirrorSpec,
  type MirrorStatus,
  type MirrorCondition,
} from './api/schema.js';
export { SpecError, UsageError, StaleOutputError, ClusterError, type SpecProblem } from './api/errors.js';
export { renderDistributionConfig, distributionConfig } from './construct/distribution-config.js';
export { upstreamServerUrl, containerdHost, findHostConflicts } from './api/hosts.js';
export type { KubeObject } from './api/kube-object.js';
