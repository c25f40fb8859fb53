/**
 * The images mirror-synth deploys, pinned. The registry's version is the one the end-to-end
 * tests build from tools/registry/go.mod (a test keeps the two equal): 3.1.2 fixes
 * CVE-2026-85747 for pull-through caches. The front is nginx's unprivileged image (it runs as
 * any non-root user); the tests run Debian's nginx with the same nginx.conf. The front's
 * metrics come from mtail, the release the tests build from tools/mtail; the volume exporter
 * is the Prometheus node_exporter, the version they build from tools/node-exporter/go.mod
 * (tests keep each pair equal).
 */
export const REGISTRY_IMAGE = 'docker.io/library/registry:3.1.2';
export const NODE_EXPORTER_IMAGE = 'quay.io/prometheus/node-exporter:v1.12.1';
export const FRONT_IMAGE = 'docker.io/nginxinc/nginx-unprivileged:1.30.4-alpine';
export const FRONT_METRICS_IMAGE = 'ghcr.io/google/mtail:3.0.9';
export const NODE_AGENT_IMAGE = 'docker.io/library/busybox:1.37.0';
