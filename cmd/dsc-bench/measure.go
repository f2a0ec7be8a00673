package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

var (
	runs       = flag.Int("n", 20, "runs per measurement")
	readyDelay = flag.Duration("ready-delay", time.Second, "the stand-in's fixed time from start to ready")
	callsOf    = flag.String("calls-of", "", "count the engine API calls of this plugin binary (another build) and stop there")
)

var (
	readyAt     = regexp.MustCompile(`ready_at_unix_nano=(\d+)`)
	confirmedIn = regexp.MustCompile(`confirmed by Sauce Labs in (\S+) `)
)

type sample []time.Duration

func (s sample) pct(p float64) time.Duration {
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(float64(len(c)-1)*p + 0.5)
	return c[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

type bencher struct {
	eng     *engine.Engine
	binary  string
	standin string
	// sauce is the REST double the confirmed rows' SCs register with and
	// the plugin asks; it answers at once.
	sauce *testenv.SauceAPI
}

// unconfirmed is what the rows that measure the plugin as it was before
// Sauce's confirmation give it: no confirmation, and a REST API on a closed
// port, so that nothing ever asks Sauce Labs' own.
var unconfirmed = []string{"PLUGIN_REST_CONFIRM=false", "PLUGIN_REST_URL=http://127.0.0.1:9"}

// header starts a table of rows.
func header() {
	fmt.Printf("| %-44s | %10s | %10s | %10s | %-18s | %-6s |\n", "measure", "median", "p95", "max", "target", "")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 46), strings.Repeat("-", 12), strings.Repeat("-", 12), strings.Repeat("-", 12), strings.Repeat("-", 20), strings.Repeat("-", 8))
}

// row prints one measure: median, p95 and max, against its target.
func row(name string, s sample, target string, ok bool) {
	mark := "ok"
	if !ok {
		mark = "MISSED"
	}
	fmt.Printf("| %-44s | %10s | %10s | %10s | %-18s | %-6s |\n", name, ms(s.pct(0.5)), ms(s.pct(0.95)), ms(s.pct(1)), target, mark)
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func okIf(b bool) string {
	if b {
		return "ok"
	}
	return "MISSED"
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

type startResult struct {
	tunnel                             string
	detect, overhead, toReady, confirm time.Duration
	maxRSS                             int64 // KiB
}

// startRun runs the plugin binary on the host (action start) and times it,
// without Sauce's confirmation. quiet makes the stand-in keep its ready
// line to itself.
func (b *bencher) startRun(ctx context.Context, i int, quiet bool) (startResult, error) {
	return b.startRunOn(ctx, b.eng, unconfirmed, i, quiet)
}

// confirming is what the confirmed row gives the plugin: the double as
// Sauce's REST API, which its SC registers with (a knob of the stand-in).
func (b *bencher) confirming() []string {
	return []string{"PLUGIN_REST_URL=" + b.sauce.URL}
}

// startRunOn is startRun against engine eng, which the plugin reaches
// through the DOCKER_* variables in via.
func (b *bencher) startRunOn(ctx context.Context, eng *engine.Engine, via []string, i int, quiet bool) (startResult, error) {
	r := startResult{tunnel: fmt.Sprintf("bench-%d-%s", i, testenv.Random(6))}
	cmd := exec.Command(b.binary)
	rest := ""
	if slices.Contains(via, "PLUGIN_REST_URL="+b.sauce.URL) {
		rest = fmt.Sprintf(`,"SAUCE_STANDIN_REST_URL":%q`, b.sauce.URL)
	}
	cmd.Env = append(append(os.Environ(), via...), "PLUGIN_USERNAME=bench", "PLUGIN_ACCESS_KEY=bench-key-0000", "PLUGIN_REGION=us-west", "PLUGIN_IMAGE="+b.standin,
		"PLUGIN_PULL=never", "PLUGIN_API_HOST_PORT=0", "PLUGIN_TUNNEL_NAME="+r.tunnel,
		fmt.Sprintf(`PLUGIN_ENV={"SAUCE_STANDIN_READY_DELAY":%q,"SAUCE_STANDIN_QUIET_READY":"%t"%s}`, readyDelay.String(), quiet, rest))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return r, err
	}
	cmd.Stderr = os.Stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	hwm := watchHWM(cmd.Process.Pid)
	var upAt time.Time
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if upAt.IsZero() && strings.Contains(sc.Text(), " is up in region ") {
			upAt = time.Now()
		}
		if m := confirmedIn.FindStringSubmatch(sc.Text()); m != nil {
			r.confirm, _ = time.ParseDuration(m[1])
		}
	}
	if err := cmd.Wait(); err != nil {
		return r, fmt.Errorf("plugin start: %w", err)
	}
	if upAt.IsZero() {
		return r, errors.New("the plugin never said the tunnel is up")
	}
	r.maxRSS = <-hwm
	c, err := eng.InspectContainer(ctx, "sauce-connect-"+r.tunnel)
	if err != nil {
		return r, err
	}
	var logs strings.Builder
	if err := eng.ContainerLogs(ctx, c.ID, engine.LogsOptions{}, &logs, io.Discard); err != nil {
		return r, err
	}
	m := readyAt.FindStringSubmatch(logs.String())
	if m == nil {
		return r, errors.New("the stand-in did not log its ready instant")
	}
	ns, _ := strconv.ParseInt(m[1], 10, 64)
	r.detect = upAt.Sub(time.Unix(0, ns))
	r.overhead = c.State.StartedAt.Sub(began)
	r.toReady = upAt.Sub(began)
	return r, nil
}

// watchHWM samples the process's own peak RSS (VmHWM, KiB) until it exits.
// (rusage's ru_maxrss would not do: os/exec forks with CLONE_VM, and Linux
// folds the parent's high-water mark into the child's at exec.)
func watchHWM(pid int) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		path := fmt.Sprintf("/proc/%d/status", pid)
		for {
			b, err := os.ReadFile(path)
			if err != nil || strings.Contains(string(b), "State:\tZ") {
				out <- peak
				return
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					peak = max(peak, kb)
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return out
}

// stopRun runs the plugin's stop and times it to the container's removal.
func (b *bencher) stopRun(ctx context.Context, tunnel string) (time.Duration, error) {
	return b.stopRunOn(ctx, b.eng, nil, tunnel)
}

// stopRunOn is stopRun against engine eng, reached through via.
func (b *bencher) stopRunOn(ctx context.Context, eng *engine.Engine, via []string, tunnel string) (time.Duration, error) {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	events, _ := eng.WatchContainer(wctx, "sauce-connect-"+tunnel)
	cmd := exec.Command(b.binary)
	cmd.Env = append(append(os.Environ(), via...), "PLUGIN_ACTION=stop", "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_REST_URL="+b.sauce.URL)
	began := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("plugin stop: %w\n%s", err, out)
	}
	for ev := range events {
		if ev.Action == "destroy" {
			return time.Unix(0, ev.TimeNano).Sub(began), nil
		}
	}
	return 0, errors.New("no destroy event after stop")
}
