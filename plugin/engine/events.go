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
}

// WatchContainer streams the lifecycle events of container id (the name or
// the ID) until ctx ends. Subscribe before starting the container so that no
// event is missed. The error channel reports a broken stream; callers then
// fall back to inspecting.
func (e *Engine) WatchContainer(ctx context.Context, id string) (<-chan Event, <-chan error) {
	f := make(client.Filters).
		Add("type", "container").
		Add("container", id).
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
				ev := Event{Action: string(m.Action), TimeNano: m.TimeNano}
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
