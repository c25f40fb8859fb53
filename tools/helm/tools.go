//go:build tools

// Package tools pins the command this module builds; the build tag keeps it out of any build.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
