/** mirror-synth as a library: the construct, the schema, the validator and the synthesizer. */
export { registryMirrorCrd } from './api/crd.js';
export { ClusterError, SpecError, type SpecProblem, StaleOutputError, UsageError } from './api/errors.js';
export { containerdHost, findHostConflicts, upstreamServerUrl } from './api/hosts.js';
export type { KubeObject } from './api/kube-object.js';
export {
  API_GROUP,
  API_VERSION,
  COMPONENT_LABEL,
  CONFIG_HASH_ANNOTATION,
  CREDENTIALS_HASH_ANNOTATION,
  DEFAULT_FILL,
  FILL_MODES,
  type FillMode,
  KIND,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  MIRROR_LABEL,
  PLURAL,
} from './api/names.js';
export {
  type MirrorCondition,
  type MirrorSpec,
  MirrorSpecSchema,
  type MirrorStatus,
  RegistryMirrorSchema,
} from './api/schema.js';
export {
  checkHostConflicts,
  checkUniqueNames,
  type MirrorInput,
  parseMirrorFile,
  parseMirrorResource,
} from './api/validate.js';
export { nodeAgentScript } from './construct/assets.js';
export { MirrorCache, type MirrorCacheProps } from './construct/cache.js';
export { distributionConfig, renderDistributionConfig } from './construct/distribution-config.js';
export { NODE_AGENT_IMAGE, REGISTRY_IMAGE } from './construct/images.js';
export { NODE_CONFIG_DIRS, NodeAgent, type NodeAgentProps } from './construct/node-agent.js';
export { DEFAULT_NAMESPACE, DEFAULT_NODE_RUNTIME, NODE_RUNTIMES, type NodeRuntime } from './construct/platform.js';
export { RegistryMirror, type RegistryMirrorProps } from './construct/registry-mirror.js';
export { loadMirrorDir } from './sources/files.js';
export { compareObjects, MirrorChart, synthesizeMirror, type SynthOptions } from './synth/chart.js';
export { renderDist } from './synth/dist.js';
export { toYaml } from './synth/yaml.js';
