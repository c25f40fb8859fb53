//go:build tools

// Package tools pins the command this module builds; the build tag keeps it out of any build.
package tools

import _ "github.com/sigstore/cosign/v2/cmd/cosign"
