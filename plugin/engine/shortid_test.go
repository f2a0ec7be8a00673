package engine

import "testing"

func TestShortIDCutsOnlyContainerIDs(t *testing.T) {
	id := "513ff443ad47a1c2e5d0b9f8e7a6c5d4b3a2918070605040302010f0e0d0c0b0"
	pod := "drone-k8s-build-my-organisation-my-long-repository-name-1234-abcdefghij"
	for in, want := range map[string]string{
		id:                  "513ff443ad47",
		pod:                 pod,
		"sauce-connect-abc": "sauce-connect-abc",
		"513ff443ad47":      "513ff443ad47",
	} {
		if got := ShortID(in); got != want {
			t.Errorf("ShortID(%q) = %q, want %q", in, got, want)
		}
	}
}
