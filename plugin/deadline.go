package plugin

import (
	"context"
	"errors"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
)

// ReadyBy is ctx bounded by ready_timeout: the one deadline of a start
// (or action wait), carried from the top of the action down to every
// wait, poll and retry. Its cause is ErrReadyTimeout.
func ReadyBy(ctx context.Context, c Config) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, c.ReadyTimeout, ErrReadyTimeout)
}

// TimedOut turns err, the end of a start whose ctx ready_timeout ended
// (an engine call cut short, a pull), into the TimeoutError the user sees
// (exit 3), naming what was under way.
func TimedOut(ctx context.Context, c Config, err error) error {
	var to *TimeoutError
	if err == nil || errors.As(err, &to) || !errors.Is(context.Cause(ctx), ErrReadyTimeout) {
		return err
	}
	return &TimeoutError{Awaited: "tunnel " + c.TunnelName + " to start", After: c.ReadyTimeout, Last: err.Error()}
}

// Renew gives ctx a fresh deadline d from now, in place of its own, and
// keeps every other cancellation (a signal): a start that waited for
// another start's tunnel in vain gets a ready_timeout of its own.
func Renew(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	base, cancelBase := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		if cause := context.Cause(ctx); !errors.Is(cause, ErrReadyTimeout) && !errors.Is(cause, context.DeadlineExceeded) {
			cancelBase(cause)
		}
	})
	fresh, cancel := context.WithTimeoutCause(base, d, ErrReadyTimeout)
	return fresh, func() { stop(); cancel(); cancelBase(nil) }
}

// deadlineOf is ctx's deadline (zero without one).
func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// Attempts runs attempt, the start of one SC, until it succeeds or fails
// for a reason a retry cannot fix, retries times at most, pausing 1 s,
// 2 s, 4 s… (at most 10 s), never past ctx's deadline; each retry is one
// warning. Both backends start SC through it.
func Attempts(ctx context.Context, s *Session, attempt func(ctx context.Context) error) error {
	p := backoff.Policy{First: time.Second, Max: 10 * time.Second, Tries: s.Cfg.Retries + 1, Until: deadlineOf(ctx), Now: s.Opt.Now,
		Notify: func(err error, try int, wait time.Duration) {
			s.Log.WithField("attempt", try+1).Warnf("%v; retrying in %s (attempt %d of %d)", err, wait, try+1, s.Cfg.Retries+1)
		}}
	return backoff.Retry(ctx, p, func(ctx context.Context) error {
		err := attempt(ctx)
		if err != nil && !canRetry(err) {
			return backoff.Permanent(err)
		}
		return err
	})
}
