//go:build tools

// Package spire only pins SPIRE's commands as dependencies of this build module, so that
// `go build -o … github.com/spiffe/spire/cmd/spire-server` resolves them with the go.sum kept here.
package spire

import (
	_ "github.com/spiffe/spire/cmd/spire-agent"
	_ "github.com/spiffe/spire/cmd/spire-server"
)
