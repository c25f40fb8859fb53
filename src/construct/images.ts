/**
 * The images mirror-synth deploys, pinned. The registry's version is the one the end-to-end
 * tests build from tools/registry/go.mod (a test keeps the two equal).
 */
export const REGISTRY_IMAGE = 'docker.io/library/registry:3.1.1';
export const NODE_AGENT_IMAGE = 'docker.io/library/busybox:1.37.0';
