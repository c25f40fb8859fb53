//go:build tools

// Package tools pins the command this module builds; the build tag keeps it out of any build.
package tools

import _ "sigs.k8s.io/kustomize/kustomize/v5"
