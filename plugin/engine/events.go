package engine

import (
	"context"
	"strconv"
	"strings"

	"github.com/moby/moby/client"
)

// Event is a lifecycle event of one container.
type Event struct {
	// Action is "start", "die", "oom", "destroy" or "health_status".
	Action string
	// Health is the new status for health_status events ("healthy", …).
	Health string
	// ExitCode is set on die events.
	ExitCode int
	// TimeNano is the engine's timestamp.
	TimeNano int64
	// ID is the container's full ID.
	ID string
}

// WatchContainer streams the lifecycle events of one container until ctx
// ends: ref is its full ID, or its exact name (to subscribe before the
// container exists, so that no event is missed). The engine matches its
// container filter by prefix, on IDs and names alike (tunnel ci would hear
// of tunnel ci-b and of its own watchdog), so every event is checked here
// against ref exactly. The error channel reports a broken stream; callers
// then fall back to inspecting.
func (e *Engine) WatchContainer(ctx context.Context, ref string) (<-chan Event, <-chan error) {
	f := make(client.Filters).
		Add("type", "container").
		Add("container", ref).
		Add("event", "start", "die", "oom", "destroy", "health_status")
	res := e.api.Events(ctx, client.EventsListOptions{Filters: f})
	out := make(chan Event)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-res.Messages:
				if !ok {
					return
				}
				if m.Actor.ID != ref && m.Actor.Attributes["name"] != ref {
					continue
				}
				ev := Event{Action: string(m.Action), TimeNano: m.TimeNano, ID: m.Actor.ID}
				if h, ok := strings.CutPrefix(ev.Action, "health_status: "); ok {
					ev.Action, ev.Health = "health_status", h
				}
				if c, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
					ev.ExitCode = c
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, res.Err
}
