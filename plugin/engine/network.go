package engine

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Network is what the plugin needs to know of a network.
type Network struct {
	ID     string
	Name   string
	Driver string
	Labels map[string]string
	// Containers lists the IDs of attached containers.
	Containers []string
}

// InspectNetwork returns a network by name or ID.
func (e *Engine) InspectNetwork(ctx context.Context, name string) (Network, error) {
	res, err := retry(ctx, e, "inspect network "+name, 0, func(ctx context.Context) (client.NetworkInspectResult, error) {
		return e.api.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	})
	if err != nil {
		return Network{}, fmt.Errorf("inspect network %s: %w", name, err)
	}
	n := Network{ID: res.Network.ID, Name: res.Network.Name, Driver: res.Network.Driver, Labels: res.Network.Labels}
	for id := range res.Network.Containers {
		n.Containers = append(n.Containers, id)
	}
	return n, nil
}

// RemoveNetwork removes a network; not-found is success.
func (e *Engine) RemoveNetwork(ctx context.Context, name string) error {
	err := call0(ctx, e, "remove network "+name, 0, func(ctx context.Context) error {
		_, err := e.api.NetworkRemove(ctx, name, client.NetworkRemoveOptions{})
		return err
	})
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}
