package testenv

import (
	"fmt"
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
