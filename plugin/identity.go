package plugin

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

// Platform names the CI system the plugin runs under.
type Platform string

// The platforms the plugin recognises; the value is also SC's runner metadata.
const (
	PlatformDrone   Platform = "drone"
	PlatformHarness Platform = "harness"
	PlatformGitHub  Platform = "github-actions"
	PlatformLocal   Platform = "local"
)

// Pipeline is the identity of the running pipeline, read from the variables
// Drone, Harness and GitHub Actions set for every step.
type Pipeline struct {
	Drone            string `envconfig:"DRONE"`
	DroneRepo        string `envconfig:"DRONE_REPO"`
	DroneBuildNumber string `envconfig:"DRONE_BUILD_NUMBER"`
	DroneStageName   string `envconfig:"DRONE_STAGE_NAME"`
	DroneStageNumber string `envconfig:"DRONE_STAGE_NUMBER"`
	DroneOutput      string `envconfig:"DRONE_OUTPUT"`
	DroneCardPath    string `envconfig:"DRONE_CARD_PATH"`

	HarnessBuildID     string `envconfig:"HARNESS_BUILD_ID"`
	HarnessExecutionID string `envconfig:"HARNESS_EXECUTION_ID"`
	HarnessPipelineID  string `envconfig:"HARNESS_PIPELINE_ID"`
	HarnessStageID     string `envconfig:"HARNESS_STAGE_ID"`
	// The iteration of a looping strategy (matrix, repeat, parallelism) on
	// the stage and on the step: <+stage.iteration>, <+step.iteration>.
	HarnessStageIndex string `envconfig:"HARNESS_STAGE_INDEX"`
	HarnessStepIndex  string `envconfig:"HARNESS_STEP_INDEX"`

	GitHubActions     string `envconfig:"GITHUB_ACTIONS"`
	GitHubRepository  string `envconfig:"GITHUB_REPOSITORY"`
	GitHubRunID       string `envconfig:"GITHUB_RUN_ID"`
	GitHubRunAttempt  string `envconfig:"GITHUB_RUN_ATTEMPT"`
	GitHubJob         string `envconfig:"GITHUB_JOB"`
	GitHubOutput      string `envconfig:"GITHUB_OUTPUT"`
	GitHubState       string `envconfig:"GITHUB_STATE"`
	GitHubEnv         string `envconfig:"GITHUB_ENV"`
	GitHubStepSummary string `envconfig:"GITHUB_STEP_SUMMARY"`
	// StateTunnelName is what the main step saved in GITHUB_STATE for the post step.
	StateTunnelName string `envconfig:"STATE_TUNNEL_NAME"`
	// PostStep is true when GitHub runs the action's post-entrypoint: the
	// binary under its second name, PostName. The post step is known from
	// that alone, since act's self-hosted mode passes no saved state.
	PostStep bool `ignored:"true"`

	KubernetesServiceHost string `envconfig:"KUBERNETES_SERVICE_HOST"`

	// The runner's proxy for the step (upper case, else lower case): the
	// default for proxy_sauce, as Sauce's own Node library takes it.
	HTTPSProxy string `envconfig:"HTTPS_PROXY"`
	HTTPProxy  string `envconfig:"HTTP_PROXY"`
	NoProxy    string `envconfig:"NO_PROXY"`
}

// LoadPipeline reads the pipeline's variables.
func LoadPipeline() (Pipeline, error) {
	var p Pipeline
	if err := envconfig.Process("", &p); err != nil {
		return p, fmt.Errorf("read pipeline variables: %w", err)
	}
	p.HTTPSProxy = cmp.Or(p.HTTPSProxy, os.Getenv("https_proxy"))
	p.HTTPProxy = cmp.Or(p.HTTPProxy, os.Getenv("http_proxy"))
	p.NoProxy = cmp.Or(p.NoProxy, os.Getenv("no_proxy"))
	return p, nil
}

// runnerProxy is the proxy the runner gives its steps for reaching Sauce
// Labs, and the variable it came from; none when NO_PROXY exempts
// saucelabs.com.
func (p Pipeline) runnerProxy() (proxy, from string) {
	for _, np := range strings.Split(p.NoProxy, ",") {
		np = strings.TrimSpace(np)
		domain := strings.TrimPrefix(strings.TrimPrefix(np, "*"), ".")
		if np == "*" || domain == "saucelabs.com" || domain != "" && strings.HasSuffix("saucelabs.com", "."+domain) {
			return "", ""
		}
	}
	switch {
	case p.HTTPSProxy != "":
		return p.HTTPSProxy, "HTTPS_PROXY"
	case p.HTTPProxy != "":
		return p.HTTPProxy, "HTTP_PROXY"
	}
	return "", ""
}

// PostName is the plugin binary's second name in the image, action.yml's
// post-entrypoint.
const PostName = "drone-sauce-connect-post"

// Platform tells which CI system set the variables.
func (p Pipeline) Platform() Platform {
	switch {
	case p.GitHubActions == "true":
		return PlatformGitHub
	case p.HarnessBuildID != "" || p.HarnessExecutionID != "" || p.HarnessStageID != "" || p.HarnessPipelineID != "":
		return PlatformHarness
	case p.Drone == "true" || p.DroneBuildNumber != "":
		return PlatformDrone
	default:
		return PlatformLocal
	}
}

// ID is the pipeline identity the default tunnel name is built from: equal
// for the start and stop steps of one build and stage (and Harness
// iteration), different for two builds. It is empty when the platform
// gives no identity (local runs). On GitHub Actions every leg of a matrix
// has the same ID: the start adds a part of its own (see identity).
func (p Pipeline) ID() string {
	var parts []string
	switch p.Platform() {
	case PlatformGitHub:
		parts = []string{p.GitHubRepository, p.GitHubRunID, p.GitHubRunAttempt, p.GitHubJob}
	case PlatformHarness:
		build := cmp.Or(p.DroneBuildNumber, p.HarnessBuildID)
		stage := cmp.Or(p.DroneStageName, p.HarnessStageID, p.DroneStageNumber)
		parts = []string{p.DroneRepo, p.HarnessPipelineID, build, stage, iteration("s", p.HarnessStageIndex), iteration("i", p.HarnessStepIndex)}
	case PlatformDrone:
		parts = []string{p.DroneRepo, p.DroneBuildNumber, p.DroneStageName}
	default:
		return ""
	}
	var kept []string
	for _, s := range parts {
		if s != "" {
			kept = append(kept, s)
		}
	}
	return strings.Join(kept, "-")
}

// iteration names a Harness iteration ("s2" for stage iteration 2), ""
// outside a looping strategy.
func iteration(prefix, index string) string {
	if index == "" {
		return ""
	}
	return prefix + index
}

// legOwn reports whether the platform's identity is shared by jobs that
// run at once, so that each start must add a part of its own to the
// default tunnel name and hand the name on: the legs of a GitHub matrix
// share every variable GitHub sets, and GitHub hands a step's variables
// on to the job's later steps (GITHUB_ENV) and to its post step
// (GITHUB_STATE). A step whose files for those its container cannot see
// (act's self-hosted mode hands a container action host paths) can hand
// nothing on: there every step of the job derives the same name alone.
func (p Pipeline) legOwn() bool {
	if p.Platform() != PlatformGitHub {
		return false
	}
	for _, f := range []string{p.GitHubEnv, p.GitHubState} {
		if f == "" {
			return false
		}
		if _, err := os.Stat(filepath.Dir(f)); err != nil {
			return false
		}
	}
	return true
}
