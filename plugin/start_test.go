package plugin

import "testing"

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
