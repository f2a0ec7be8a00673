package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// fake is a backend that records the action performed on it.
type fake struct {
	name string
	did  *string
}

func (f fake) Start(context.Context) (*plugin.Tunnel, error) {
	*f.did = f.name + " start"
	return &plugin.Tunnel{}, nil
}
func (f fake) Run(context.Context) error    { *f.did = f.name + " run"; return nil }
func (f fake) Stop(context.Context) error   { *f.did = f.name + " stop"; return nil }
func (f fake) Status(context.Context) error { *f.did = f.name + " status"; return nil }

var errDenied = errors.New("permission denied")

// TestChoice: auto takes Docker when an engine answers, else Kubernetes in
// a pod, else fails naming both; docker and kubernetes take only theirs.
func TestChoice(t *testing.T) {
	unreachable := fmt.Errorf("%w at unix:///var/run/docker.sock: no such file", engine.ErrUnreachable)
	for _, tc := range []struct {
		name       string
		choice     plugin.BackendChoice
		action     plugin.Action
		dockerErr  error
		kubeErr    error
		did, err   string
		exit       int
		kubeCalled bool
	}{
		{"auto with an engine", plugin.BackendAuto, plugin.ActionStart, nil, nil, "docker start", "", 0, false},
		{"auto, no engine, in a pod", plugin.BackendAuto, plugin.ActionStop, unreachable, nil, "kubernetes stop", "", 0, true},
		{"auto, no engine, no pod", plugin.BackendAuto, plugin.ActionStart, unreachable, errNotInCluster, "", "or run the step in a Kubernetes pod", plugin.ExitEngine, true},
		{"auto, an engine that refuses", plugin.BackendAuto, plugin.ActionStart, errDenied, nil, "", "permission denied", plugin.ExitFailure, false},
		{"docker, no engine", plugin.BackendDocker, plugin.ActionStart, unreachable, nil, "", "mount the Docker socket", plugin.ExitEngine, false},
		{"kubernetes", plugin.BackendKubernetes, plugin.ActionStatus, nil, nil, "kubernetes status", "", 0, true},
		{"kubernetes outside a pod", plugin.BackendKubernetes, plugin.ActionRun, nil, errNotInCluster, "", "backend kubernetes:", plugin.ExitFailure, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var did string
			kubeCalled := false
			conn := Connectors{
				Docker: func(context.Context, *plugin.Session) (plugin.Backend, func(), error) {
					if tc.dockerErr != nil {
						return nil, nil, tc.dockerErr
					}
					return fake{"docker", &did}, func() {}, nil
				},
				Kubernetes: func(*plugin.Session) (plugin.Backend, error) {
					kubeCalled = true
					if tc.kubeErr != nil {
						return nil, tc.kubeErr
					}
					return fake{"kubernetes", &did}, nil
				},
			}
			err := Act(context.Background(), plugin.Config{Backend: tc.choice, Action: tc.action}, conn, plugin.Options{})
			if did != tc.did || kubeCalled != tc.kubeCalled || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
				t.Errorf("did %q, kubernetes asked %t, %v; want %q, %t, %q", did, kubeCalled, err, tc.did, tc.kubeCalled, tc.err)
			}
			if plugin.ExitCode(err) != tc.exit {
				t.Errorf("exit %d, want %d", plugin.ExitCode(err), tc.exit)
			}
		})
	}
}

// TestPostStepNeedsNoBackend: after an action that started nothing, the
// post step connects to nothing.
func TestPostStepNeedsNoBackend(t *testing.T) {
	conn := Connectors{
		Docker: func(context.Context, *plugin.Session) (plugin.Backend, func(), error) {
			t.Fatal("Docker was asked")
			return nil, nil, nil
		},
		Kubernetes: func(*plugin.Session) (plugin.Backend, error) { t.Fatal("Kubernetes was asked"); return nil, nil },
	}
	if err := Act(context.Background(), plugin.Config{Action: plugin.ActionNone}, conn, plugin.Options{}); err != nil {
		t.Fatal(err)
	}
}

// waitingFake is a Kubernetes backend that can follow the pipeline's SC.
type waitingFake struct{ fake }

func (f waitingFake) Wait(context.Context) (*plugin.Tunnel, error) {
	*f.did = f.name + " wait"
	return &plugin.Tunnel{}, nil
}

// TestWaitNeedsNoEngine: action wait never asks Docker; in a pod the
// Kubernetes backend follows SC, elsewhere SC's API alone is asked.
func TestWaitNeedsNoEngine(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	for _, tc := range []struct {
		name     string
		choice   plugin.BackendChoice
		kubeErr  error
		did, err string
	}{
		{"in a pod", plugin.BackendAuto, nil, "kubernetes wait", ""},
		{"outside a pod", plugin.BackendAuto, errNotInCluster, "", ""},
		{"docker: SC's API alone", plugin.BackendDocker, nil, "", ""},
		{"kubernetes outside a pod", plugin.BackendKubernetes, errNotInCluster, "", "backend kubernetes:"},
		{"a pod, but refused settings", plugin.BackendAuto, errDenied, "", "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var did string
			conn := Connectors{
				Docker: func(context.Context, *plugin.Session) (plugin.Backend, func(), error) {
					t.Fatal("Docker was asked")
					return nil, nil, nil
				},
				Kubernetes: func(*plugin.Session) (plugin.Backend, error) {
					if tc.kubeErr != nil {
						return nil, tc.kubeErr
					}
					return waitingFake{fake{"kubernetes", &did}}, nil
				},
			}
			c := plugin.Config{Backend: tc.choice, Action: plugin.ActionWait, APIURL: srv.URL, ReadyTimeout: 5 * time.Second}
			err := Act(context.Background(), c, conn, plugin.Options{})
			if did != tc.did || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
				t.Errorf("did %q, %v; want %q, %q", did, err, tc.did, tc.err)
			}
		})
	}
}
