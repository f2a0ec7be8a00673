package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
)

// A busy engine (25 builds starting at once) answers slowly, and now and then
// fails a request that would succeed a moment later: a 500 from a runtime
// call that timed out inside the engine, a 503 or 429 from a socket proxy in
// front of it, a connection dropped or refused while it restarts. Each verb
// of this package retries such a failure with backoff instead of failing the
// build, and bounds every request so that a hung engine cannot hang the step.
const (
	// requestTimeout bounds one request to the engine (streams excepted).
	requestTimeout = 60 * time.Second
	// retryBudget bounds the time one verb spends retrying.
	retryBudget  = 10 * time.Second
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// Retry describes a transient failure about to be retried.
type Retry struct {
	Op      string        // what was asked: "create container sc-…"
	Err     error         // how it failed
	Attempt int           // the attempt that failed, from 1
	Wait    time.Duration // the pause before the next attempt
}

// transient reports whether err is a failure of the engine that a retry can
// fix: an internal error, unavailable or rate-limited, a connection that
// failed, was reset or ended early, or a request that timed out. The
// caller's own cancellation is never transient.
func transient(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, errRequestTimeout):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return cerrdefs.IsInternal(err) || cerrdefs.IsUnavailable(err) || cerrdefs.IsResourceExhausted(err) ||
		client.IsErrConnectionFailed(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED)
}

// errRequestTimeout marks a request cut by requestTimeout while the caller's
// context was still live.
var errRequestTimeout = errors.New("the docker engine did not answer in time")

// retry calls call until it succeeds, fails with an error that is not
// transient, or the retry budget from the first failure (or the context)
// is spent. Each request is bounded by requestTimeout, plus
// slack for a verb that waits by design (stop). Only requests whose answer
// is read in full inside call may be retried: a stream would be cut.
func retry[T any](ctx context.Context, e *Engine, op string, slack time.Duration, call func(ctx context.Context) (T, error)) (T, error) {
	// ctx's deadline (a start's ready_timeout) bounds the retries too.
	p := backoff.Policy{First: firstBackoff, Max: maxBackoff, Budget: retryBudget}
	p.Until, _ = ctx.Deadline()
	if e.OnRetry != nil {
		p.Notify = func(err error, try int, wait time.Duration) {
			e.OnRetry(Retry{Op: op, Err: err, Attempt: try, Wait: wait})
		}
	}
	var v T
	var last error
	err := backoff.Retry(ctx, p, func(ctx context.Context) error {
		v, last = once(ctx, e, slack, call)
		if last != nil && !transient(last) {
			return backoff.Permanent(last)
		}
		return last
	})
	if err != nil && last != nil {
		// The call's own failure, not the cause of a context cut mid-pause.
		err = last
	}
	return v, err
}

// once makes one bounded call.
func once[T any](ctx context.Context, e *Engine, slack time.Duration, call func(ctx context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, e.requestTimeout()+slack)
	defer cancel()
	v, err := call(cctx)
	// A request cut by requestTimeout is worth another try.
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		err = fmt.Errorf("%w within %s: %w", errRequestTimeout, e.requestTimeout(), err)
	}
	return v, err
}

func (e *Engine) requestTimeout() time.Duration {
	if e.RequestTimeout > 0 {
		return e.RequestTimeout
	}
	return requestTimeout
}

// call0 is retry for verbs that return only an error.
func call0(ctx context.Context, e *Engine, op string, slack time.Duration, call func(ctx context.Context) error) error {
	_, err := retry(ctx, e, op, slack, func(ctx context.Context) (struct{}, error) { return struct{}{}, call(ctx) })
	return err
}
