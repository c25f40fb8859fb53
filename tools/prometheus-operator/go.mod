// Pins the Prometheus Operator whose CRDs (example/prometheus-operator-crd in its module) the
// tests install before applying dist/monitoring. Nothing is compiled: tools/build.sh copies the CRDs.
module mirror-synth/tools/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.94.0
