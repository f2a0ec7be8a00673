package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

var levels = flag.String("levels", "1,5,10,25", "concurrency sweep: how many Drone-style pipelines start at once, per level (empty: no sweep)")

// level is what one concurrency level measured.
type level struct {
	n        int
	watchdog bool   // false: cleanup stop-step-only, the bound of what a shared watchdog could save
	ready    int    // pipelines whose tunnel came up
	toReady  sample // the runner creates the step → the step exits 0 (tunnel ready)
	floor    sample // the same number of bare SC containers created and started at once: create → StartedAt
	floor3   sample // three bare containers per pipeline (what a pipeline starts: step, SC, watchdog)
	overhead sample // the plugin's own time: step started → SC started, plus SC ready → step exited
	teardown sample // the runner's teardown (step removed, network removal tried) → SC and network gone
	rss      []int64
	usage    []int64
	left     struct{ containers, networks int }
}

// sweep starts n Drone-style pipelines at once per level, each on its own
// network with the plugin image as a step (watchdog on, no stop step), and
// tears them down as drone-runner-docker does.
func (b *bencher) sweep(ctx context.Context, image string) ([]level, error) {
	var out []level
	for _, f := range strings.Split(*levels, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-levels: %q is not a positive number", f)
		}
		l := level{n: n, watchdog: true}
		if l.floor, err = b.floor(ctx, n); err != nil {
			return nil, err
		}
		if l.floor3, err = b.floor(ctx, 3*n); err != nil {
			return nil, err
		}
		if err := b.pipelines(ctx, image, &l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if len(out) > 1 {
		// The largest level again without watchdogs: what one shared
		// watchdog per engine could save at most.
		l := out[len(out)-1]
		l = level{n: l.n, floor: l.floor, floor3: l.floor3}
		if err := b.pipelines(ctx, image, &l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// scEnv is what a bare SC container needs to run.
func (b *bencher) scEnv() []engine.EnvVar {
	return []engine.EnvVar{{Name: "SAUCE_USERNAME", Value: "bench"}, {Name: "SAUCE_ACCESS_KEY", Value: "bench-key-0000"},
		{Name: "SAUCE_REGION", Value: "us-west"}, {Name: "SAUCE_TUNNEL_NAME", Value: "floor"}, {Name: "SAUCE_API_ADDRESS", Value: ":8032"},
		{Name: "SAUCE_STANDIN_READY_DELAY", Value: readyDelay.String()}}
}

// floor creates and starts n bare SC containers at once: the engine's own
// cost of that many container starts, in the same run.
func (b *bencher) floor(ctx context.Context, n int) (sample, error) {
	var (
		mu  sync.Mutex
		s   sample
		ids []string
		wg  sync.WaitGroup
	)
	errs := make(chan error, n)
	tag := testenv.Random(6)
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := b.eng.CreateContainer(ctx, engine.ContainerSpec{Name: fmt.Sprintf("bench-floor-%s-%d", tag, i), Image: b.standin,
				Cmd: []string{"run"}, Env: b.scEnv(), Labels: testenv.Labels})
			if id != "" {
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
			if err == nil {
				err = b.eng.StartContainer(ctx, id)
			}
			var c engine.Container
			if err == nil {
				c, err = b.eng.InspectContainer(ctx, id)
			}
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			s = append(s, c.State.StartedAt.Sub(began))
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.removeAll(ids)
	close(errs)
	return s, <-errs
}

func (b *bencher) removeAll(ids []string) {
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { _ = b.eng.RemoveContainer(context.Background(), id) })
	}
	wg.Wait()
}

// pipeline is one Drone-style build of the sweep.
type pipeline struct {
	network, tunnel string
	step            string // the plugin step's container
	began, readyAt  time.Time
	err             error
}

func (b *bencher) pipelines(ctx context.Context, image string, l *level) error {
	tag := testenv.Random(6)
	ps := make([]*pipeline, l.n)
	for i := range ps {
		ps[i] = &pipeline{network: fmt.Sprintf("bench-sweep-%s-%d", tag, i), tunnel: fmt.Sprintf("sweep-%s-%d", tag, i)}
		if err := testenv.CreateNetwork(ps[i].network); err != nil {
			return err
		}
	}
	defer b.cleanup(ps)
	cleanup := "auto"
	if !l.watchdog {
		cleanup = "stop-step-only"
	}
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { b.runStep(ctx, image, cleanup, p) })
	}
	wg.Wait()
	for _, p := range ps {
		if p.err != nil {
			fmt.Fprintf(os.Stderr, "level %d: %s: %v\n", l.n, p.tunnel, p.err)
			continue
		}
		l.ready++
		l.toReady = append(l.toReady, p.readyAt.Sub(p.began))
		o, err := b.overhead(ctx, p)
		if err != nil {
			return err
		}
		l.overhead = append(l.overhead, o)
		if !l.watchdog {
			continue
		}
		if rss, usage, err := watchdogMemory(ctx, b.eng, p.tunnel); err == nil {
			l.rss, l.usage = append(l.rss, rss), append(l.usage, usage)
		} else {
			fmt.Fprintf(os.Stderr, "level %d: watchdog memory of %s: %v\n", l.n, p.tunnel, err)
		}
	}
	if !l.watchdog {
		return nil // nothing would remove the tunnels: not a teardown to measure
	}
	l.teardown = b.teardown(ctx, ps)
	for _, p := range ps {
		found, _ := b.eng.ListContainers(ctx, map[string]string{plugin.LabelTunnel: p.tunnel})
		l.left.containers += len(found)
		if _, err := b.eng.InspectNetwork(ctx, p.network); err == nil {
			l.left.networks++
		}
	}
	return nil
}

// runStep is the runner starting the plugin step and waiting for it.
func (b *bencher) runStep(ctx context.Context, image, cleanup string, p *pipeline) {
	p.began = time.Now()
	ran, err := testenv.RunContainer(ctx, b.eng, engine.ContainerSpec{
		Name: p.network + "-step", Image: image, Mounts: []engine.Mount{testenv.Socket},
		Env: []engine.EnvVar{{Name: "DRONE", Value: "true"}, {Name: "PLUGIN_USERNAME", Value: "bench"}, {Name: "PLUGIN_ACCESS_KEY", Value: "bench-key-0000"},
			{Name: "PLUGIN_REGION", Value: "us-west"}, {Name: "PLUGIN_IMAGE", Value: b.standin}, {Name: "PLUGIN_PULL", Value: "never"},
			{Name: "PLUGIN_TUNNEL_NAME", Value: p.tunnel}, {Name: "PLUGIN_CLEANUP", Value: cleanup},
			{Name: "PLUGIN_REST_CONFIRM", Value: "false"}, {Name: "PLUGIN_REST_URL", Value: "http://127.0.0.1:9"}, {Name: "PLUGIN_ENV", Value: fmt.Sprintf(`{"SAUCE_STANDIN_READY_DELAY":%q}`, readyDelay.String())}},
		Networks: []engine.NetworkAttachment{{Network: p.network, Aliases: []string{"sauce"}}},
	}, 5*time.Minute, true)
	p.readyAt, p.step = time.Now(), ran.ID
	if err == nil && ran.ExitCode != 0 {
		err = fmt.Errorf("plugin step exited %d:\n%s", ran.ExitCode, ran.Logs)
	}
	p.err = err
}

// overhead is the plugin's own share of a pipeline's time to ready: from its
// step's start to SC's start, and from SC's ready instant to the step's end.
func (b *bencher) overhead(ctx context.Context, p *pipeline) (time.Duration, error) {
	step, err := b.eng.InspectContainer(ctx, p.step)
	if err != nil {
		return 0, err
	}
	sc, err := b.eng.InspectContainer(ctx, "sauce-connect-"+p.tunnel)
	if err != nil {
		return 0, err
	}
	var logs strings.Builder
	if err := b.eng.ContainerLogs(ctx, sc.ID, engine.LogsOptions{}, &logs, io.Discard); err != nil {
		return 0, err
	}
	m := readyAt.FindStringSubmatch(logs.String())
	if m == nil {
		return 0, errors.New("the stand-in did not log its ready instant")
	}
	ns, _ := strconv.ParseInt(m[1], 10, 64)
	return sc.State.StartedAt.Sub(step.State.StartedAt) + p.readyAt.Sub(time.Unix(0, ns)), nil
}

// watchdogMemory reads the watchdog container's memory from its cgroup:
// anonymous memory (what it alone costs; its binary's pages are shared page
// cache) and the cgroup's peak usage.
func watchdogMemory(ctx context.Context, eng *engine.Engine, tunnel string) (rss, peak int64, err error) {
	found, err := eng.ListContainers(ctx, map[string]string{plugin.LabelTunnel: tunnel, plugin.LabelRole: plugin.RoleWatchdog})
	if err != nil || len(found) != 1 {
		return 0, 0, fmt.Errorf("%d watchdogs (%v)", len(found), err)
	}
	id := found[0].ID
	for _, c := range []struct{ dir, rss, peak string }{
		{"/sys/fs/cgroup/memory/docker/" + id, "total_rss", "memory.max_usage_in_bytes"}, // cgroup v1, cgroupfs
		{"/sys/fs/cgroup/system.slice/docker-" + id + ".scope", "anon", "memory.peak"},   // cgroup v2, systemd
		{"/sys/fs/cgroup/docker/" + id, "anon", "memory.peak"},                           // cgroup v2, cgroupfs
	} {
		stat, err := os.ReadFile(filepath.Join(c.dir, "memory.stat"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(stat), "\n") {
			if v, ok := strings.CutPrefix(line, c.rss+" "); ok {
				rss, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		p, _ := os.ReadFile(filepath.Join(c.dir, c.peak))
		peak, _ = strconv.ParseInt(strings.TrimSpace(string(p)), 10, 64)
		return rss, peak, nil
	}
	return 0, 0, errors.New("no memory cgroup found for the watchdog")
}

// teardown does what drone-runner-docker's Destroy does at the end of each
// build, all builds at once: remove the step containers, try to remove the
// network once and ignore the error. It then times how long until each
// pipeline's SC container and network are gone (the watchdog's work). One
// poller watches all pipelines, so that the watching does not load the
// engine it measures: one container list per tick, and a network look-up
// only for a pipeline whose containers are gone.
func (b *bencher) teardown(ctx context.Context, ps []*pipeline) sample {
	began := time.Now()
	for _, p := range ps {
		go func() {
			if p.step != "" {
				_ = b.eng.RemoveContainer(ctx, p.step)
			}
			_ = b.eng.RemoveNetwork(ctx, p.network)
		}()
	}
	var s sample
	pending := slices.Clone(ps)
	for deadline := time.Now().Add(time.Minute); len(pending) > 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		found, err := b.eng.ListContainers(ctx, map[string]string{plugin.LabelManaged: "true"})
		if err != nil {
			continue
		}
		alive := map[string]bool{}
		for _, c := range found {
			alive[c.Labels[plugin.LabelTunnel]] = true
		}
		pending = slices.DeleteFunc(pending, func(p *pipeline) bool {
			if alive[p.tunnel] {
				return false
			}
			_, err := b.eng.InspectNetwork(ctx, p.network)
			if engine.IsNotFound(err) {
				s = append(s, time.Since(began))
				return true
			}
			return false
		})
	}
	return s
}

// cleanup removes whatever a level left, after it was counted.
func (b *bencher) cleanup(ps []*pipeline) {
	for _, p := range ps {
		testenv.RemoveTunnel(b.eng, p.tunnel)
		if p.step != "" {
			_ = b.eng.RemoveContainer(context.Background(), p.step)
		}
		_ = b.eng.RemoveNetwork(context.Background(), p.network)
	}
}

// printSweep prints the sweep's table and marks the goals.
func printSweep(ls []level) {
	if len(ls) == 0 {
		return
	}
	fmt.Printf("\nconcurrency sweep: Drone-style pipelines started at once (plugin image as a step on its own network, watchdog on,\n"+
		"no stop step, then the runner's teardown); stand-in ready after %s\n\n", readyDelay)
	fmt.Println("| pipelines | ready | time to ready p50 / p95 / max | engine floor p50 / p95 | floor, 3 per pipeline, p95 / max | plugin overhead p50 / p95 | above floor p95 | teardown p50 / max | watchdog rss / peak (median) | left |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	var single time.Duration
	last := ls[0]
	for i, l := range ls {
		name := strconv.Itoa(l.n)
		if l.watchdog {
			last = l
		} else {
			name += ", no watchdog"
		}
		if len(l.toReady) == 0 {
			fmt.Printf("| %s | 0/%d | — | — | — | — | — | — | — | — |\n", name, l.n)
			continue
		}
		above := l.overhead.pct(0.95) - l.floor.pct(0.95)
		if i == 0 || l.n == 1 {
			// The baseline: one pipeline alone (else the smallest level).
			single = l.overhead.pct(0.5) - l.floor.pct(0.5)
		}
		teardown, memory, left := "—", "—", "—"
		if l.watchdog {
			memory = fmt.Sprintf("%.1f / %.1f MB", median(l.rss)/1e6, median(l.usage)/1e6)
			left = fmt.Sprintf("%d containers, %d networks", l.left.containers, l.left.networks)
		}
		if len(l.teardown) > 0 {
			teardown = ms(l.teardown.pct(0.5)) + " / " + ms(l.teardown.pct(1))
		}
		fmt.Printf("| %s | %d/%d | %s / %s / %s | %s / %s | %s / %s | %s / %s | %s | %s | %s | %s |\n",
			name, l.ready, l.n, ms(l.toReady.pct(0.5)), ms(l.toReady.pct(0.95)), ms(l.toReady.pct(1)),
			ms(l.floor.pct(0.5)), ms(l.floor.pct(0.95)), ms(l.floor3.pct(0.95)), ms(l.floor3.pct(1)), ms(l.overhead.pct(0.5)), ms(l.overhead.pct(0.95)), ms(above),
			teardown, memory, left)
	}
	if len(last.toReady) == 0 {
		fmt.Printf("\ngoals at %d: every pipeline ready: MISSED\n", last.n)
		return
	}
	above := last.overhead.pct(0.95) - last.floor.pct(0.95)
	fmt.Printf("\ngoals at %d pipelines:\n", last.n)
	fmt.Printf("  every pipeline ready: %d/%d: %s\n", last.ready, last.n, okIf(last.ready == last.n))
	fmt.Printf("  p95 overhead above the engine floor ≤ 1.5× the single pipeline's (%s): %s: %s\n", ms(single), ms(above), okIf(above <= single*3/2))
	fmt.Printf("  nothing left behind: %d containers, %d networks: %s\n", last.left.containers, last.left.networks, okIf(last.left.containers+last.left.networks == 0))
	fmt.Printf("  memory the plugin adds per tunnel (the watchdog's own, rss) ≤ 5 MB: %.1f MB: %s\n", median(last.rss)/1e6, okIf(median(last.rss) <= 5e6))
	if bare := ls[len(ls)-1]; !bare.watchdog && len(bare.toReady) > 0 {
		fmt.Printf("without watchdogs at %d (the most one shared watchdog per engine could save): time to ready p95 %s instead of %s, overhead p95 %s instead of %s\n",
			bare.n, ms(bare.toReady.pct(0.95)), ms(last.toReady.pct(0.95)), ms(bare.overhead.pct(0.95)), ms(last.overhead.pct(0.95)))
	}
}

func median(v []int64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := make(sample, len(v))
	for i, x := range v {
		s[i] = time.Duration(x)
	}
	return float64(s.pct(0.5))
}
