package docker

import (
	"cmp"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// containerSpec turns the settings and the placement into the SC container.
// It is pure: the same inputs give the same spec, which is golden-tested.
func containerSpec(c plugin.Config, pl placement, now time.Time) engine.ContainerSpec {
	labels := plugin.Labels(c, now, pl.Deadline, pl.Labels)
	labels[plugin.LabelRole] = plugin.RoleTunnel
	labels[plugin.LabelReadyBy] = strconv.FormatInt(now.Add(c.ReadyTimeout).Unix(), 10)
	var env []engine.EnvVar
	for _, e := range plugin.SCEnv(c, apiAddress(c, pl)) {
		env = append(env, engine.EnvVar(e))
	}
	args, file := plugin.SCFile(c)
	var files []engine.File
	if file != nil {
		env = append(env, engine.EnvVar{Name: "SAUCE_CONFIG_FILE", Value: plugin.SCConfigPath})
		files = append(files, configFile(file, pl.ImageUser))
	}
	return engine.ContainerSpec{
		Name:        c.ContainerName,
		Image:       c.Image,
		Cmd:         append([]string{"run"}, args...),
		Env:         env,
		Labels:      labels,
		Port:        c.APIPort,
		Publish:     pl.Publish,
		NetworkMode: pl.NetworkMode,
		Networks:    pl.Networks,
		Files:       files,
		StopTimeout: int(c.StopTimeout.Seconds()),
	}
}

// configFile is SC's config file in its container: readable by the image's
// user alone (0400) when the image names it by number ("uid" or
// "uid:gid"), else by every user of the container (0444), since a user
// name cannot be resolved without the image's own /etc/passwd.
func configFile(content []byte, user string) engine.File {
	f := engine.File{Path: plugin.SCConfigPath, Mode: 0o444, Content: content}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, uerr := strconv.Atoi(cmp.Or(u, "0"))
	gid, gerr := strconv.Atoi(cmp.Or(g, "0"))
	if uerr == nil && (!hasGroup || gerr == nil) {
		f.Mode, f.UID, f.GID = 0o400, uid, gid
		if !hasGroup {
			f.GID = uid
		}
	}
	return f
}

// apiAddress is where SC's API listens: every address of its own network
// stack, or, in the host's (network_mode host), only api_bind, so that
// /configz and /metrics are not served to the host's network.
func apiAddress(c plugin.Config, pl placement) string {
	if pl.NetworkMode == "host" {
		return net.JoinHostPort(c.APIBind, strconv.Itoa(cmp.Or(pl.APIPort, c.APIPort)))
	}
	return ":" + strconv.Itoa(c.APIPort)
}

// trace renders the spec as the docker command a user could run to do the
// same, with secret values shown as ***.
func trace(s engine.ContainerSpec) string {
	s = s.Redacted()
	line := strings.Join(runArgs(s), " ")
	for _, f := range s.Files {
		line += fmt.Sprintf("\n+ docker cp - %s:%s  # mode %04o, uid %d; its values are not shown", s.Name, f.Path, f.Mode, f.UID)
	}
	for _, n := range s.Networks[min(1, len(s.Networks)):] {
		line += "\n+ docker network connect"
		for _, a := range n.Aliases {
			line += " --alias " + a
		}
		line += " " + n.Network + " " + s.Name
	}
	return line
}

// runArgs is the docker run command line of a (redacted) spec.
func runArgs(s engine.ContainerSpec) []string {
	args := []string{"+ docker run -d --name", s.Name}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--label", quote(k+"="+s.Labels[k]))
	}
	for _, e := range s.Env {
		args = append(args, "-e", quote(e.Name+"="+e.Value))
	}
	if s.Publish != nil {
		hp := ""
		if s.Publish.Port != 0 {
			hp = strconv.Itoa(s.Publish.Port)
		}
		args = append(args, "-p", fmt.Sprintf("%s:%s:%d", s.Publish.IP, hp, s.Port))
	}
	if s.StopTimeout > 0 {
		args = append(args, "--stop-timeout", strconv.Itoa(s.StopTimeout))
	}
	if s.NetworkMode != "" {
		args = append(args, "--network", s.NetworkMode)
	} else if len(s.Networks) > 0 {
		args = append(args, "--network", s.Networks[0].Network)
		for _, a := range s.Networks[0].Aliases {
			args = append(args, "--network-alias", a)
		}
	}
	for _, m := range s.Mounts {
		mode := ""
		if m.ReadOnly {
			mode = ":ro"
		}
		args = append(args, "-v", m.Source+":"+m.Target+mode)
	}
	args = append(args, s.Image)
	for _, a := range s.Cmd {
		args = append(args, quote(a))
	}
	return args
}

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"'$`\\|&;<>()*?[]{}!#~") {
		return strconv.Quote(s)
	}
	return s
}
