//go:build tools

// Package tools pins drone-cli, whose `drone exec` runs drone-runner-docker's
// engine, for the end-to-end tests. build.sh builds it, and nektos/act (which
// builds with a plain `go install`), into ./bin.
package tools

import (
	_ "github.com/drone/drone-cli/drone"
)
