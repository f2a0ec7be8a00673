package plugin

import (
	"errors"
	"testing"
)

func TestClassifyExitFromSCErrorLines(t *testing.T) {
	for _, tc := range []struct {
		log          string
		creds, wrong bool
	}{
		{"2026/11/28 16:45:16.401367 [control] [ERROR] fatal error exiting: create tunnel: dial tcp: lookup api: no such host", false, false},
		{"2026/11/28 16:45:16.401367 [control] [INFO] starting\n2026/11/28 16:45:16.5 [control] [ERROR] fatal error exiting: create tunnel: 401 Unauthorized", true, false},
		{"[control] [ERROR] fatal error exiting: create tunnel: Unauthorized", true, false},
		{"[control] [INFO] user agent Unauthorized-Client/1.0", false, false},
		{"[control] [ERROR] fatal error exiting: required flag(s) --region not set", false, true},
		{"[control] [ERROR] fatal error exiting: invalid region \"mars\"", false, true},
	} {
		if got := errorLineMatches(tc.log, credentialsRejected); got != tc.creds {
			t.Errorf("credentials rejected in %q: %v, want %v", tc.log, got, tc.creds)
		}
		if got := errorLineMatches(tc.log, configRefused); got != tc.wrong {
			t.Errorf("configuration refused in %q: %v, want %v", tc.log, got, tc.wrong)
		}
	}
}

// TestClassifyExit: SC's error lines decide; only an early exit for another
// reason is retried.
func TestClassifyExit(t *testing.T) {
	exited := &ExitedError{ExitCode: 1}
	for _, tc := range []struct {
		name, log string
		retry     bool
		code      int
	}{
		{"credentials", "2026/01/01 10:00:00.000000 [control] [ERROR] fatal error exiting: create tunnel: 401 Unauthorized", false, ExitCredentials},
		{"tunnel limit", "[control] [ERROR] fatal error exiting: create tunnel: Too many active tunnels: 10; allowed: 10", false, ExitFailure},
		{"flags", "Error: unknown flag: --nope", false, ExitFailure},
		{"network", "[control] [ERROR] fatal error exiting: create tunnel: dial tcp: no such host", true, ExitFailure},
		{"a 401 in a timestamp is no refusal", "2026/01/01 16:45:16.401367 [control] [INFO] starting\n[control] [ERROR] fatal error exiting: lost", true, ExitFailure},
	} {
		err := ClassifyExit(exited, tc.log)
		if canRetry(err) != tc.retry || ExitCode(err) != tc.code {
			t.Errorf("%s: %v retried %t, exit %d; want %t, %d", tc.name, err, canRetry(err), ExitCode(err), tc.retry, tc.code)
		}
	}
	other := errors.New("engine gone")
	if ClassifyExit(other, "fatal error exiting: 401") != other || canRetry(other) {
		t.Error("an error other than SC's exit was classified or retried")
	}
}
