// The Pod sandbox ("pause") binary of the e2e node's stand-in pause image; the cache entry is
// named by the golang.org/x/sys version it is built with.
module mirror-synth/tools/pause

go 1.26.0

require golang.org/x/sys v0.40.0
