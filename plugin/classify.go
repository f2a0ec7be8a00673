package plugin

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// errPermanent marks an SC exit that a retry cannot fix.
var errPermanent = errors.New("not retried")

// errTunnelLimit marks an SC that Sauce Labs refused a tunnel because the
// account runs as many as it may.
var errTunnelLimit = errors.New("tunnel limit reached")

// canRetry reports whether a failed attempt may be fixed by starting SC
// again: SC exited early, for a reason other than rejected credentials or a
// configuration it refused.
func canRetry(err error) bool {
	var (
		ex    *ExitedError
		creds *CredentialsError
	)
	return errors.As(err, &ex) && !errors.As(err, &creds) && !errors.Is(err, errPermanent)
}

// ClassifyExit turns SC's exit before readiness into the error the user
// sees, from SC's error lines: rejected credentials, the account's tunnel
// limit and a refused configuration are permanent.
func ClassifyExit(err error, tail string) error {
	var ex *ExitedError
	switch {
	case !errors.As(err, &ex):
		return err
	case errorLineMatches(tail, credentialsRejected):
		return &CredentialsError{Err: err}
	case errorLineMatches(tail, tunnelLimit):
		return fmt.Errorf("sauce labs refused another tunnel: the account's limit of active tunnels is reached (see SC's log above). "+
			"Tunnels leaked by cancelled builds count against it: list and stop them at https://app.saucelabs.com/tunnels "+
			"(or GET and DELETE /rest/v1/<username>/tunnels on your region's API), or share one tunnel (tunnel_pool, shared); not retried: %w: %w: %w", err, errPermanent, errTunnelLimit)
	case errorLineMatches(tail, configRefused):
		return fmt.Errorf("sauce connect refused its configuration (see its log above): %w: %w", err, errPermanent)
	}
	return err
}

// What SC's error lines say when a retry cannot help.
var (
	credentialsRejected = regexp.MustCompile(`(?i)\b401\b|unauthori[sz]ed|invalid (username|access key|credentials)`)
	// SC5 documents "create tunnel: <msg>" for the tunnel limit without the
	// text of msg; Sauce's REST API words it "Too many active tunnels".
	tunnelLimit   = regexp.MustCompile(`(?i)too many active tunnels|tunnel limit`)
	configRefused = regexp.MustCompile(`(?i)required flag|invalid (value|argument|region|flag)|unknown flag`)
	errorLine     = regexp.MustCompile(`(?i)\[error\]|fatal|\berror\b`)
)

// errorLineMatches reports whether one of SC's error lines matches re.
// Other lines are ignored: a timestamp such as 16:45:16.401367 is no 401.
func errorLineMatches(log string, re *regexp.Regexp) bool {
	for _, line := range strings.Split(log, "\n") {
		if errorLine.MatchString(line) && re.MatchString(line) {
			return true
		}
	}
	return false
}
