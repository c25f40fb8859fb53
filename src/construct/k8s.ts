/**
 * The one place mirror-synth imports cdk8s-plus-27. It uses the Kubernetes API classes
 * cdk8s-plus ships (`k8s.Kube*`), not its L2 workloads: those add address labels to
 * immutable selectors and defaults that block the node agent's hostPath. Moving to a
 * newer cdk8s-plus line is a change to this file.
 */
export { k8s } from 'cdk8s-plus-27';
