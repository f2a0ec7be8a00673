package plugin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// writeOutputs hands the tunnel's facts to later steps, in the files the
// platform gives: DRONE_OUTPUT (Harness output variables), GITHUB_OUTPUT,
// GITHUB_STATE (for the post step), GITHUB_STEP_SUMMARY and a Drone card.
// Never the access key: only names, addresses and IDs are written. out is
// the plugin's output, where a card for /dev/stdout goes.
func writeOutputs(c Config, t *Tunnel, out io.Writer) []error {
	p := c.Pipeline
	var errs []error
	add := func(name string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	// Each fact under its Harness (DRONE_OUTPUT) and its GitHub name.
	facts := []struct{ drone, github, value string }{
		{"SAUCE_TUNNEL_NAME", "tunnel_name", t.Name},
		{"SAUCE_TUNNEL_ID", "tunnel_id", t.SauceID},
		{"SAUCE_CONNECT_API", "api_url", t.Endpoints.Container},
		{"SAUCE_CONNECT_HOST_API", "host_api_url", t.Endpoints.Host},
		{"SAUCE_CONNECT_CONTAINER", "container_id", t.ID},
		{"SAUCE_REGION", "region", c.Region},
	}
	var drone, github [][2]string
	for _, f := range facts {
		drone, github = append(drone, [2]string{f.drone, f.value}), append(github, [2]string{f.github, f.value})
	}
	if p.DroneOutput != "" {
		add("DRONE_OUTPUT", appendLines(p.DroneOutput, drone))
	}
	if p.GitHubOutput != "" {
		add("GITHUB_OUTPUT", appendLines(p.GitHubOutput, github))
	}
	if p.GitHubState != "" {
		add("GITHUB_STATE", appendLines(p.GitHubState, [][2]string{
			{"TUNNEL_NAME", t.Name},
			{"CONTAINER_ID", t.ID},
		}))
	}
	if p.GitHubEnv != "" {
		// The job's later steps (a stop or status step, the tests) get the
		// name as SAUCE_TUNNEL_NAME, which the plugin and Sauce's tools read.
		add("GITHUB_ENV", appendLines(p.GitHubEnv, [][2]string{{"SAUCE_TUNNEL_NAME", t.Name}}))
	}
	if p.GitHubStepSummary != "" {
		add("GITHUB_STEP_SUMMARY", appendText(p.GitHubStepSummary, summary(c, t)))
	}
	if p.DroneCardPath != "" {
		add("DRONE_CARD_PATH", writeCard(p.DroneCardPath, c, t, out))
	}
	return errs
}

// appendLines appends KEY=value lines; a value with a line break would add
// lines of its own to the file (outputs of its choosing), so none is
// written at all.
func appendLines(path string, kv [][2]string) error {
	var b strings.Builder
	for _, e := range kv {
		if strings.ContainsAny(e[1], "\r\n") {
			return fmt.Errorf("%s would hold a line break; nothing written", e[0])
		}
		if e[1] != "" {
			fmt.Fprintf(&b, "%s=%s\n", e[0], e[1])
		}
	}
	return appendText(path, b.String())
}

func appendText(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

func summary(c Config, t *Tunnel) string {
	var b strings.Builder
	b.WriteString("### Sauce Connect tunnel\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Tunnel | `%s` |\n| Region | %s |\n", t.Name, c.Region)
	if t.Endpoints.Container != "" {
		fmt.Fprintf(&b, "| API (container steps) | %s |\n", t.Endpoints.Container)
	}
	if t.Endpoints.Host != "" {
		fmt.Fprintf(&b, "| API (host steps) | %s |\n", t.Endpoints.Host)
	}
	if t.Reused {
		b.WriteString("| Time to ready | reused a running tunnel |\n")
	} else {
		fmt.Fprintf(&b, "| Time to ready | %.2f s |\n", t.ReadyIn.Seconds())
	}
	return b.String() + "\n"
}

// cardSchema is the adaptive card template Drone renders the card with.
const cardSchema = "https://drone-plugins.github.io/drone-sauce-connect/card.json"

// writeCard writes a Drone card: on /dev/stdout as the escape sequence the
// runner extracts from the log (written to out), elsewhere as a JSON file.
func writeCard(path string, c Config, t *Tunnel, out io.Writer) error {
	data, err := json.Marshal(map[string]any{
		"schema": cardSchema,
		"data": map[string]string{
			"tunnel": t.Name, "region": c.Region, "api": t.Endpoints.Container, "host_api": t.Endpoints.Host, "container": t.Ref,
		},
	})
	if err != nil {
		return err
	}
	if path == "/dev/stdout" {
		_, err = fmt.Fprintf(out, "\u001b]1338;%s\u001b]0m\n", base64.StdEncoding.EncodeToString(data))
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
