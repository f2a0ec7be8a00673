package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// The Docker operations only tests need go through the docker CLI (every
// machine here has the client), so that the plugin's one SDK package,
// plugin/engine, holds only what the plugin does.

// docker runs the docker CLI and returns its trimmed output.
func docker(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// BuildDir builds the image in dir (its Dockerfile) as tag with the
// classic builder, which needs no registry for FROM scratch.
func BuildDir(dir, tag string) error {
	_, err := docker("build", "--quiet", "--label", LabelTest+"=true", "-t", tag, dir)
	return err
}

// RemoveImage removes an image; a missing one is no error.
func RemoveImage(ref string) {
	_, _ = docker("image", "rm", "-f", ref)
}

// ImageSize returns an image's size in bytes.
func ImageSize(ref string) (int64, error) {
	out, err := docker("image", "inspect", "--format", "{{.Size}}", ref)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(out, 10, 64)
}

// CreateNetwork creates a bridge network with the test label.
func CreateNetwork(name string) error {
	_, err := docker("network", "create", "--label", LabelTest+"=true", name)
	return err
}

// NetworkNames lists the networks carrying all the labels.
func NetworkNames(labels map[string]string) ([]string, error) {
	args := []string{"network", "ls", "--format", "{{.Name}}"}
	for k, v := range labels {
		args = append(args, "--filter", "label="+k+"="+v)
	}
	out, err := docker(args...)
	if err != nil || out == "" {
		return nil, err
	}
	return strings.Split(out, "\n"), nil
}

// VolumeExists reports whether a volume of that name exists.
func VolumeExists(name string) bool {
	_, err := docker("volume", "inspect", name)
	return err == nil
}

// RemoveVolume removes a volume; a missing one is no error.
func RemoveVolume(name string) {
	_, _ = docker("volume", "rm", "-f", name)
}

// HostAddress is an IPv4 address of this machine that the containers on an
// engine's default bridge reach it at: the bridge's gateway as the engine
// reports it, else the address of the bridge's interface. An engine on its
// very first start reports no gateway in the bridge's IPAM config (it
// does after a restart), so the interface is the answer that holds on
// every engine; both are this machine's own. run is the docker CLI of the
// engine (docker, or a Dockerd's Docker).
func HostAddress(run func(args ...string) (string, error)) (string, error) {
	out, err := run("network", "inspect", "bridge", "--format", "{{json .}}")
	if err != nil {
		return "", fmt.Errorf("the host's address on the engine's default bridge: %w", err)
	}
	var n struct {
		IPAM    struct{ Config []struct{ Gateway string } }
		Options map[string]string
	}
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		return "", fmt.Errorf("the host's address on the engine's default bridge: docker network inspect bridge: %w", err)
	}
	for _, c := range n.IPAM.Config {
		if ip := net.ParseIP(c.Gateway); ip != nil && ip.To4() != nil {
			return ip.String(), nil
		}
	}
	name := n.Options["com.docker.network.bridge.name"]
	ip, err := interfaceIPv4(name)
	if err != nil {
		return "", fmt.Errorf("no address where containers reach this machine: the default bridge reports no IPv4 gateway (IPAM config %+v) and its interface %q: %w", n.IPAM.Config, name, err)
	}
	return ip, nil
}

// interfaceIPv4 returns the first IPv4 address of a network interface.
func interfaceIPv4(name string) (string, error) {
	if name == "" {
		return "", errors.New("the engine names no bridge interface")
	}
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return "", err
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", errors.New("has no IPv4 address")
}

// DockerCLI runs the docker CLI against the machine's engine and returns
// its trimmed output.
func DockerCLI(args ...string) (string, error) { return docker(args...) }
