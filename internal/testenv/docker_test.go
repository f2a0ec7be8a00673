package testenv

import (
	"errors"
	"strings"
	"testing"
)

// TestHostAddress: the host's address comes from the bridge's gateway when
// the engine reports one, else from the bridge's interface (an engine's
// first start reports none); with neither, one line says what was looked
// for, and no empty address is ever returned.
func TestHostAddress(t *testing.T) {
	answer := func(out string) func(...string) (string, error) {
		return func(...string) (string, error) { return out, nil }
	}
	got, err := HostAddress(answer(`{"IPAM":{"Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]},"Options":{"com.docker.network.bridge.name":"no-such-if0"}}`))
	if err != nil || got != "172.17.0.1" {
		t.Errorf("with a gateway: %q, %v", got, err)
	}
	got, err = HostAddress(answer(`{"IPAM":{"Config":[{"Subnet":"127.0.0.0/8"}]},"Options":{"com.docker.network.bridge.name":"lo"}}`))
	if err != nil || got != "127.0.0.1" {
		t.Errorf("no gateway, the interface's address: %q, %v", got, err)
	}
	got, err = HostAddress(answer(`{"IPAM":{"Config":[{"Subnet":"172.17.0.0/16"}]},"Options":{"com.docker.network.bridge.name":"no-such-if0"}}`))
	if err == nil || got != "" || !strings.Contains(err.Error(), `no IPv4 gateway`) || !strings.Contains(err.Error(), `"no-such-if0"`) || strings.Contains(err.Error(), "\n") {
		t.Errorf("neither: %q, %v", got, err)
	}
	if _, err := HostAddress(func(...string) (string, error) { return "", errors.New("no engine") }); err == nil {
		t.Error("a failed inspect gave an address")
	}
}
