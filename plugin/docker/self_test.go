package docker

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

const id64 = "4f2c9d1e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"

const upper = "/var/lib/docker/overlay2/9999999999999999999999999999999999999999999999999999999999999999/diff"

var mountinfo = `1251 1240 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B,upperdir=` + upper + `,workdir=/var/lib/docker/overlay2/9999/work
1262 1251 8:1 /var/lib/docker/containers/` + id64 + `/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/sda1 rw
1263 1251 8:1 /var/lib/docker/containers/` + id64 + `/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw`

func TestContainerIDCandidates(t *testing.T) {
	got := containerIDCandidates(mountinfo, "0::/", "custom-host")
	if diff := cmp.Diff([]string{id64}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if got := containerIDCandidates("", "12:pids:/docker/"+id64+"\n", "4f2c9d1e8a7b"); !cmp.Equal(got, []string{id64, "4f2c9d1e8a7b"}) {
		t.Errorf("cgroup and hostname fallbacks: %q", got)
	}
	if got := containerIDCandidates("", "9:name=systemd:/", "vm"); len(got) != 0 {
		t.Errorf("a host looks like a container: %q", got)
	}
}

func TestRootUpperDir(t *testing.T) {
	if got := rootUpperDir(mountinfo); got != upper {
		t.Errorf("got %q, want %q", got, upper)
	}
	host := "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw"
	if got := rootUpperDir(host); got != "" {
		t.Errorf("an ext4 root has no upper dir, got %q", got)
	}
}

func quietLog() *logrus.Entry {
	log := logrus.New()
	log.SetOutput(&strings.Builder{})
	return logrus.NewEntry(log)
}

// act runs an action in the job container's network namespace: the
// hostname guess names the job container, which must not be taken for the
// plugin's own; the scan of running containers finds the one that holds
// the marker.
func TestFindSelfProvesTheGuess(t *testing.T) {
	const job, self = "job00000000000000000000000000000000000000000000000000000000000", "self0000000000000000000000000000000000000000000000000000000000"
	containers := map[string]engine.Container{
		job:  {ID: job, Image: "busybox"},
		self: {ID: self, Image: "plugin", NetworkMode: "container:" + job},
	}
	all := []engine.Summary{{ID: self, State: "running"}, {ID: "gone", State: "exited"}, {ID: job, State: "running"}}
	f := &fakeEngine{
		inspect: func(id string) (engine.Container, error) {
			for full, c := range containers {
				if strings.HasPrefix(full, id) {
					return c, nil
				}
			}
			return engine.Container{}, notFound{}
		},
		pathExists: func(id, path string) bool { return id == self && path == "/marker" },
	}
	got, err := findSelf(context.Background(), f, []string{job[:12]}, all, selfProof{marker: "/marker"}, quietLog())
	if err != nil || got == nil || got.ID != self {
		t.Fatalf("got %+v, %v; want the plugin's own container", got, err)
	}
	if want := "stat " + job + ", stat " + self; strings.Join(f.calls, ", ") != want {
		t.Errorf("calls %q, want %q", f.calls, want)
	}

	// Nothing holds the marker: no container, rather than a wrong one.
	f.pathExists = func(string, string) bool { return false }
	if got, err := findSelf(context.Background(), f, []string{job[:12]}, all, selfProof{marker: "/marker"}, quietLog()); got != nil || err != nil {
		t.Errorf("got %+v, %v; want nothing proven", got, err)
	}
}

func TestFindSelfByUpperDir(t *testing.T) {
	f := &fakeEngine{inspect: func(id string) (engine.Container, error) {
		return engine.Container{ID: id64, UpperDir: upper}, nil
	}}
	got, err := findSelf(context.Background(), f, []string{id64}, nil, selfProof{upperDir: upper}, quietLog())
	if err != nil || got == nil || got.ID != id64 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if len(f.calls) != 0 {
		t.Errorf("the upper dir alone proves it, yet: %q", f.calls)
	}
}
