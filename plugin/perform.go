package plugin

import (
	"context"
	"fmt"
)

// Backend runs tunnels: on a Docker engine or on Kubernetes.
type Backend interface {
	// Start opens the tunnel, or reuses a ready one of its name, and
	// leaves it running.
	Start(ctx context.Context) (*Tunnel, error)
	// Run keeps the tunnel in the foreground until ctx ends, then stops it.
	Run(ctx context.Context) error
	// Stop ends the tunnel; nothing to stop is a warning.
	Stop(ctx context.Context) error
	// Status says whether the tunnel is up and ready.
	Status(ctx context.Context) error
}

// Perform does the configured action with the backend: the one switch. A
// start carries ready_timeout in its context from here down.
func Perform(ctx context.Context, c Config, b Backend) error {
	switch c.Action {
	case ActionStart:
		ctx, cancel := ReadyBy(ctx, c)
		defer cancel()
		_, err := b.Start(ctx)
		return TimedOut(ctx, c, err)
	case ActionRun:
		return b.Run(ctx)
	case ActionStop:
		return b.Stop(ctx)
	case ActionStatus:
		return b.Status(ctx)
	default:
		return fmt.Errorf("unknown action %q", c.Action)
	}
}
