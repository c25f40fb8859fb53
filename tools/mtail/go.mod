// Builds mtail, which turns the front's (nginx) access log into Prometheus metrics, for the
// monitoring tests. mtail's v3 tags are not Go module versions, so this pins the pseudo-version
// of a commit: 4c7e0e1174ac is v3.0.9 (the image the cache pod runs) with only dependency
// updates and CI changes on top (`git diff --stat v3.0.9 4c7e0e1174ac`: go.mod, go.sum, workflows).
module mirror-synth/tools/mtail

go 1.26.0

require github.com/google/mtail v0.0.0-20260226175936-4c7e0e1174ac

require (
	contrib.go.opencensus.io/exporter/jaeger v0.2.1 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/golang/glog v1.2.2 // indirect
	github.com/golang/groupcache v0.0.0-20210331224755-41bb18bfe9da // indirect
	github.com/golang/protobuf v1.5.3 // indirect
	github.com/google/go-cmp v0.6.0 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/prometheus/client_golang v1.20.4 // indirect
	github.com/prometheus/client_model v0.6.1 // indirect
	github.com/prometheus/common v0.60.0 // indirect
	github.com/prometheus/procfs v0.15.1 // indirect
	github.com/uber/jaeger-client-go v2.25.0+incompatible // indirect
	go.opencensus.io v0.24.0 // indirect
	golang.org/x/sync v0.7.0 // indirect
	golang.org/x/sys v0.26.0 // indirect
	google.golang.org/api v0.105.0 // indirect
	google.golang.org/genproto v0.0.0-20230410155749-daa745c078e1 // indirect
	google.golang.org/grpc v1.56.3 // indirect
	google.golang.org/protobuf v1.34.2 // indirect
)
