package plugin

import (
	"context"
	"errors"
	"sync"
	"time"
)

// CleanupTimeout bounds all cleanup work; it runs on a fresh context, since
// the plugin's own may already be cancelled by the signal that ended it.
const CleanupTimeout = 60 * time.Second

// Rollback holds what must be undone if the plugin fails. It is registered
// step by step as things are created and is safe to run more than once.
type Rollback struct {
	mu  sync.Mutex
	fns []func(context.Context) error
}

// Add registers what undoes one thing just created.
func (c *Rollback) Add(f func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

// Do undoes everything registered, newest first, and forgets it, so a
// second run does nothing. It returns every error joined.
func (c *Rollback) Do(ctx context.Context) error {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	defer cancel()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		errs = append(errs, fns[i](ctx))
	}
	return errors.Join(errs...)
}

// Forget drops what is registered: used once the tunnel is handed over.
func (c *Rollback) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = nil
}
