//go:build tools

// Package tools pins the commands this module builds; the build tag keeps it out of any build.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
