package plugin

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Exit codes, documented in the README's table.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitSettings    = 2
	ExitTimeout     = 3
	ExitEngine      = 4
	ExitCredentials = 5
)

// SignalError records the signal that cancelled the plugin.
type SignalError struct {
	Signal os.Signal
}

func (e *SignalError) Error() string {
	switch e.Signal {
	case syscall.SIGINT:
		return "interrupted by SIGINT"
	case syscall.SIGTERM:
		return "interrupted by SIGTERM"
	}
	return fmt.Sprintf("interrupted by %v", e.Signal)
}

// CredentialsError means Sauce Labs refused the username or access key.
type CredentialsError struct {
	Err error
}

func (e *CredentialsError) Error() string {
	return fmt.Sprintf("sauce labs rejected the credentials (check username and access_key, and the region of the account): %v", e.Err)
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// EngineError means no usable Docker engine could be reached (exit 4).
type EngineError struct {
	Err error
}

func (e *EngineError) Error() string { return e.Err.Error() }

func (e *EngineError) Unwrap() error { return e.Err }

// ExitCode maps an error returned by an action (backend.Act, or the
// watchdog's reap) to the process exit code.
func ExitCode(err error) int {
	var (
		sig   *SignalError
		set   *SettingsError
		tout  *TimeoutError
		creds *CredentialsError
		eng   *EngineError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &sig):
		if s, ok := sig.Signal.(syscall.Signal); ok {
			return 128 + int(s)
		}
		return ExitFailure
	case errors.As(err, &set):
		return ExitSettings
	case errors.As(err, &tout):
		return ExitTimeout
	case errors.As(err, &creds):
		return ExitCredentials
	case errors.As(err, &eng):
		return ExitEngine
	default:
		return ExitFailure
	}
}

// ExitedError means SC stopped before it became ready.
type ExitedError struct {
	ExitCode  int
	OOMKilled bool
}

func (e *ExitedError) Error() string {
	if e.OOMKilled {
		return "sauce connect was killed for running out of memory (OOMKilled)"
	}
	return fmt.Sprintf("sauce connect exited with code %d before the tunnel was ready", e.ExitCode)
}

// TimeoutError means SC did not become ready in time.
type TimeoutError struct {
	Awaited string
	After   time.Duration
	Last    string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("sauce connect was not ready after %s: waited for %s; last probe: %s; raise ready_timeout if the tunnel needs longer", e.After.Round(time.Millisecond), e.Awaited, e.Last)
}
