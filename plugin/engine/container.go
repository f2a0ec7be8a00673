package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Container is what the plugin needs to know of a container.
type Container struct {
	ID   string
	Name string
	// Image is the image reference the container was created from;
	// ImageID is the image's content ID, which no retag can change.
	Image   string
	ImageID string
	Labels  map[string]string
	// Env (NAME=value) and Cmd are the container's environment and command.
	Env   []string
	Cmd   []string
	State State
	// NetworkMode is the container's HostConfig.NetworkMode ("host",
	// "container:<id>", "bridge", "default" or a network name).
	NetworkMode string
	// Networks maps network name to this container's endpoint on it.
	Networks map[string]Endpoint
	// HostPorts lists the host bindings of each exposed TCP port.
	HostPorts map[int][]HostPort
	// Mounts lists the container's mounts, destination to host source.
	Mounts map[string]string
	// AutoRemove is true for containers started with --rm.
	AutoRemove bool
	// UpperDir is the writable layer's directory on the host (overlay
	// storage only), as /proc/self/mountinfo shows it inside the container.
	UpperDir string
}

// State is the running state of a container.
type State struct {
	Status    string // created, running, exited, …
	Running   bool
	ExitCode  int
	OOMKilled bool
	Error     string
	// StartedAt is when the engine last started the container.
	StartedAt time.Time
}

// Endpoint is a container's attachment to one network.
type Endpoint struct {
	NetworkID string
	IP        string
	Gateway   string
	Aliases   []string
}

// Summary is one row of a container listing.
type Summary struct {
	ID     string
	Names  []string
	Labels map[string]string
	State  string
	// Ports lists published host bindings as "ip:port".
	Ports []HostPort
}

// CreateContainer creates the container described by s and joins its extra
// networks. The ID is returned even when joining a network fails, so that the
// caller can remove what was created.
func (e *Engine) CreateContainer(ctx context.Context, s ContainerSpec) (string, error) {
	opts, err := toCreateOptions(s)
	if err != nil {
		return "", err
	}
	op := "create container " + s.Name
	failed := false
	id, err := retry(ctx, e, op, 0, func(ctx context.Context) (string, error) {
		res, err := e.api.ContainerCreate(ctx, opts)
		if err != nil && failed && IsConflict(err) {
			// An earlier attempt may have created it before failing.
			if c, ierr := e.InspectContainer(ctx, s.Name); ierr == nil && c.State.Status == "created" && HasLabels(c.Labels, s.Labels) {
				return c.ID, nil
			}
		}
		failed = failed || transient(err)
		return res.ID, err
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	for _, n := range s.Networks[min(1, len(s.Networks)):] {
		if err := e.Connect(ctx, n.Network, id, n.Aliases); err != nil {
			return id, err
		}
	}
	if len(s.Files) > 0 {
		if err := e.PutFiles(ctx, id, s.Files); err != nil {
			return id, err
		}
	}
	return id, nil
}

// PutFiles copies files into a container (created, running or ended), as
// one tar archive extracted at its root (the folders are made 0755, the
// files root's).
func (e *Engine) PutFiles(ctx context.Context, id string, files []File) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		rel := strings.TrimPrefix(path.Clean(f.Path), "/")
		for d := path.Dir(rel); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
			return err
		}
	}
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path.Clean(f.Path), "/"), Mode: f.Mode, Size: int64(len(f.Content)), Uid: f.UID, Gid: f.GID}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	archive := buf.Bytes()
	op := "copy files into " + ShortID(id)
	err := call0(ctx, e, op, 0, func(ctx context.Context) error {
		_, err := e.api.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: "/", Content: bytes.NewReader(archive)})
		return err
	})
	if err != nil {
		return fmt.Errorf("copy files into container %s: %w", ShortID(id), err)
	}
	return nil
}

// Connect joins container id to a network with the given aliases.
func (e *Engine) Connect(ctx context.Context, networkName, id string, aliases []string) error {
	op := fmt.Sprintf("connect %s to network %s", ShortID(id), networkName)
	err := call0(ctx, e, op, 0, func(ctx context.Context) error {
		_, err := e.api.NetworkConnect(ctx, networkName, client.NetworkConnectOptions{
			Container:      id,
			EndpointConfig: &network.EndpointSettings{Aliases: aliases},
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("connect %s to network %s: %w", ShortID(id), networkName, err)
	}
	return nil
}

// Disconnect removes container id from a network; not-found is success.
func (e *Engine) Disconnect(ctx context.Context, networkName, id string) error {
	op := fmt.Sprintf("disconnect %s from network %s", ShortID(id), networkName)
	err := call0(ctx, e, op, 0, func(ctx context.Context) error {
		_, err := e.api.NetworkDisconnect(ctx, networkName, client.NetworkDisconnectOptions{Container: id, Force: true})
		return err
	})
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("disconnect %s from network %s: %w", ShortID(id), networkName, err)
	}
	return nil
}

// StartContainer starts a created container.
func (e *Engine) StartContainer(ctx context.Context, id string) error {
	err := call0(ctx, e, "start container "+ShortID(id), 0, func(ctx context.Context) error {
		_, err := e.api.ContainerStart(ctx, id, client.ContainerStartOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("start container %s: %w", ShortID(id), err)
	}
	return nil
}

// InspectContainer returns the state and attachments of a container.
func (e *Engine) InspectContainer(ctx context.Context, id string) (Container, error) {
	res, err := retry(ctx, e, "inspect container "+ShortID(id), 0, func(ctx context.Context) (client.ContainerInspectResult, error) {
		return e.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	})
	if err != nil {
		return Container{}, fmt.Errorf("inspect container %s: %w", ShortID(id), err)
	}
	return fromInspect(res.Container), nil
}

func fromInspect(r container.InspectResponse) Container {
	c := Container{
		ID:        r.ID,
		Name:      strings.TrimPrefix(r.Name, "/"),
		Image:     r.Image,
		ImageID:   r.Image,
		Networks:  map[string]Endpoint{},
		HostPorts: map[int][]HostPort{},
		Mounts:    map[string]string{},
	}
	if r.Config != nil {
		c.Labels = r.Config.Labels
		c.Image = r.Config.Image
		c.Env = r.Config.Env
		c.Cmd = r.Config.Cmd
	}
	if s := r.State; s != nil {
		c.State = State{Status: string(s.Status), Running: s.Running, ExitCode: s.ExitCode, OOMKilled: s.OOMKilled, Error: s.Error}
		c.State.StartedAt, _ = time.Parse(time.RFC3339Nano, s.StartedAt)
	}
	if r.HostConfig != nil {
		c.NetworkMode = string(r.HostConfig.NetworkMode)
		c.AutoRemove = r.HostConfig.AutoRemove
	}
	if ns := r.NetworkSettings; ns != nil {
		for name, ep := range ns.Networks {
			if ep == nil {
				continue
			}
			c.Networks[name] = Endpoint{NetworkID: ep.NetworkID, IP: addr(ep.IPAddress.String()), Gateway: addr(ep.Gateway.String()), Aliases: ep.Aliases}
		}
		for port, binds := range ns.Ports {
			if port.Proto() != network.TCP {
				continue
			}
			for _, b := range binds {
				hp, _ := strconv.Atoi(b.HostPort)
				c.HostPorts[int(port.Num())] = append(c.HostPorts[int(port.Num())], HostPort{IP: addr(b.HostIP.String()), Port: hp})
			}
		}
	}
	for _, m := range r.Mounts {
		c.Mounts[m.Destination] = m.Source
	}
	if r.GraphDriver != nil {
		c.UpperDir = r.GraphDriver.Data["UpperDir"]
	}
	return c
}

// PathExists reports whether path exists in container id's filesystem as
// the engine sees it (through its archive API).
func (e *Engine) PathExists(ctx context.Context, id, path string) (bool, error) {
	err := call0(ctx, e, "stat "+path+" in "+ShortID(id), 0, func(ctx context.Context) error {
		_, err := e.api.ContainerStatPath(ctx, id, client.ContainerStatPathOptions{Path: path})
		return err
	})
	return exists(err, "stat "+path+" in container "+ShortID(id))
}

// maxReadFile bounds what ReadFile returns.
const maxReadFile = 64 << 10

// ReadFile reads a small file from container id's filesystem (running or
// ended, through the engine's archive API). A missing file or container is
// an error for which IsNotFound holds.
func (e *Engine) ReadFile(ctx context.Context, id, file string) ([]byte, error) {
	var out []byte
	err := call0(ctx, e, "read "+file+" in "+ShortID(id), 0, func(ctx context.Context) error {
		res, err := e.api.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: file})
		if err != nil {
			return err
		}
		defer res.Content.Close()
		tr := tar.NewReader(res.Content)
		if _, err := tr.Next(); err != nil {
			return fmt.Errorf("archive of %s: %w", file, err)
		}
		out, err = io.ReadAll(io.LimitReader(tr, maxReadFile))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s in container %s: %w", file, ShortID(id), err)
	}
	return out, nil
}

// addr turns the String of a zero netip.Addr into "".
func addr(s string) string {
	if s == "invalid IP" {
		return ""
	}
	return s
}

// ListContainers lists containers (running or not) carrying all the labels.
func (e *Engine) ListContainers(ctx context.Context, labels map[string]string) ([]Summary, error) {
	res, err := retry(ctx, e, "list containers", 0, func(ctx context.Context) (client.ContainerListResult, error) {
		return e.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: labelFilters(labels)})
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Summary, 0, len(res.Items))
	for _, it := range res.Items {
		s := Summary{ID: it.ID, Labels: it.Labels, State: string(it.State)}
		for _, n := range it.Names {
			s.Names = append(s.Names, strings.TrimPrefix(n, "/"))
		}
		for _, p := range it.Ports {
			if p.PublicPort != 0 {
				s.Ports = append(s.Ports, HostPort{IP: addr(p.IP.String()), Port: int(p.PublicPort)})
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// labelFilters selects objects carrying all the labels ("" matches any value).
func labelFilters(labels map[string]string) client.Filters {
	f := make(client.Filters)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if labels[k] == "" {
			f.Add("label", k)
		} else {
			f.Add("label", k+"="+labels[k])
		}
	}
	return f
}

// StopContainer sends SIGTERM and waits up to timeout for the container to
// exit before the engine kills it. It reports whether the container was
// killed because the timeout ran out. A missing container is not an error.
func (e *Engine) StopContainer(ctx context.Context, id string, timeout time.Duration) (killed bool, err error) {
	secs := int(timeout.Round(time.Second) / time.Second)
	began := time.Now()
	err = call0(ctx, e, "stop container "+ShortID(id), timeout, func(ctx context.Context) error {
		_, err := e.api.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
		return err
	})
	if err != nil {
		if IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("stop container %s: %w", ShortID(id), err)
	}
	c, err := e.InspectContainer(ctx, id)
	if err != nil {
		if IsNotFound(errors.Unwrap(err)) || IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	// The engine reports SIGKILL as exit code 137 once the grace period is spent.
	killed = c.State.ExitCode == 137 && time.Since(began) >= timeout
	return killed, nil
}

// RemoveContainer force-removes a container with its anonymous volumes.
// Not-found and a removal already in progress count as success.
func (e *Engine) RemoveContainer(ctx context.Context, id string) error {
	err := call0(ctx, e, "remove container "+ShortID(id), 0, func(ctx context.Context) error {
		_, err := e.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		return err
	})
	if err != nil && !IsNotFound(err) && !IsConflict(err) {
		return fmt.Errorf("remove container %s: %w", ShortID(id), err)
	}
	return nil
}

// LogsOptions selects what ContainerLogs returns.
type LogsOptions struct {
	Follow bool
	// Tail is the number of lines from the end ("" or "all" for everything).
	Tail string
}

// ContainerLogs copies the container's stdout and stderr to the writers
// until the log ends (for Follow, when the container stops) or ctx ends.
func (e *Engine) ContainerLogs(ctx context.Context, id string, o LogsOptions, stdout, stderr io.Writer) error {
	rc, err := e.api.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: o.Follow, Tail: o.Tail})
	if err != nil {
		return fmt.Errorf("read logs of %s: %w", ShortID(id), err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read logs of %s: %w", ShortID(id), err)
	}
	return nil
}

// HasLabels reports whether a container's labels (have) carry every label
// asked for (want).
func HasLabels(have, want map[string]string) bool {
	if len(have) < len(want) {
		return false
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// ShortID abbreviates a container ID the way the docker CLI does; a name
// is never cut.
func ShortID(id string) string {
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return id // a name, not an ID
	}
	return id[:12]
}
