// Package backoff is the project's one retry idiom: an operation is tried
// until it succeeds, fails for good, or its policy's bounds are spent, with
// pauses that grow from First to Max. A failure a retry cannot fix is
// marked Permanent; a failure that says when to come back (Retry-After)
// is marked with After. Polls are retries too: "not yet" is an ordinary
// failure.
package backoff

import (
	"context"
	"errors"
	"time"
)

// Policy bounds the tries of one operation.
type Policy struct {
	// First is the first pause; Max the largest (0: First); Factor the
	// growth from one pause to the next (0: 2).
	First, Max time.Duration
	Factor     float64
	// Tries bounds the tries (0: no bound).
	Tries int
	// Until is when no further try starts (zero: no bound but ctx): a try
	// whose pause would end after it is not made. Budget (0: none) is such
	// a bound counted from the first failure.
	Until  time.Time
	Budget time.Duration
	// Notify, when set, hears of each failure before its pause.
	Notify func(err error, try int, wait time.Duration)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Retry calls op until it returns nil or a Permanent error, the policy's
// bounds are spent, or ctx ends. It returns op's last error (unwrapped
// from Permanent), or ctx's cause when ctx ended during a pause.
func Retry(ctx context.Context, p Policy, op func(ctx context.Context) error) error {
	now := p.Now
	if now == nil {
		now = time.Now
	}
	wait, until := p.First, p.Until
	for try := 1; ; try++ {
		err := op(ctx)
		var perm *permanent
		switch {
		case err == nil:
			return nil
		case errors.As(err, &perm):
			return perm.err
		case ctx.Err() != nil || p.Tries > 0 && try >= p.Tries:
			return err
		}
		if b := now().Add(p.Budget); try == 1 && p.Budget > 0 && (until.IsZero() || b.Before(until)) {
			until = b
		}
		pause := wait
		var after *afterError
		if errors.As(err, &after) {
			pause = after.wait
		}
		if !until.IsZero() && now().Add(pause).After(until) {
			return err
		}
		if p.Notify != nil {
			p.Notify(err, try, pause)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
		wait = p.next(wait)
	}
}

// next is the pause after wait.
func (p Policy) next(wait time.Duration) time.Duration {
	f := p.Factor
	if f == 0 {
		f = 2
	}
	limit := p.Max
	if limit == 0 {
		limit = p.First
	}
	return min(time.Duration(float64(wait)*f), limit)
}

// permanent is a failure that no retry can fix.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent marks err as one no retry can fix (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err: err}
}

// afterError is a failure that says when to try again.
type afterError struct {
	err  error
	wait time.Duration
}

func (a *afterError) Error() string { return a.err.Error() }
func (a *afterError) Unwrap() error { return a.err }

// After marks err as one to try again after wait, instead of the policy's
// pause (a Retry-After; 0 for at once).
func After(err error, wait time.Duration) error {
	if err == nil {
		return nil
	}
	return &afterError{err: err, wait: wait}
}
