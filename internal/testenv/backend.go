package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
)

// CheckStopped checks what every backend promises once its tunnel is
// stopped: status fails, and another stop is a warning in out, not a
// failure.
func CheckStopped(tb testing.TB, b plugin.Backend, out fmt.Stringer) {
	tb.Helper()
	if err := b.Status(context.Background()); err == nil {
		tb.Error("status after stop: no error")
	}
	if err := b.Stop(context.Background()); err != nil || !strings.Contains(out.String(), "nothing to stop") {
		tb.Errorf("second stop: %v; want a warning only", err)
	}
}
