package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

var kubernetes = flag.Bool("kubernetes", true, "also measure the Kubernetes backend on a real kubelet (needs root and make kube-tools)")

// kubernetes measures the Kubernetes backend where it runs in production:
// the plugin image as a step container of a build pod on a real kubelet
// (testenv.StartNode, testenv.BuildPod), against the same stand-in. Times
// come from the kubelet's own log timestamps of each line (the plugin's
// first line, its "is up" line; SC's first line) and SC's logged ready
// instant, all on this host's clock.
func (b *bencher) kubernetes(pluginImage string) error {
	if !*kubernetes {
		return nil
	}
	admin := testenv.KubeUser{Name: "admin", Token: "admin-" + testenv.Random(16), Groups: []string{"system:masters"}}
	began := time.Now()
	n, err := testenv.StartNode([]testenv.KubeUser{admin}, pluginImage, b.standin)
	switch {
	case err != nil && os.Getenv("CI") == "true":
		return fmt.Errorf("CI=true and no kubelet node: %w", err)
	case err != nil:
		fmt.Printf("\nKubernetes rows skipped: no kubelet node: %v\n", err)
		return nil
	}
	fmt.Printf("\nKubernetes backend on a real kubelet (node up in %s), %d runs each, stand-in ready after %s\n\n", time.Since(began).Round(time.Millisecond), *runs, *readyDelay)
	var probe, condition kubeSample
	for i := range *runs {
		if err = probe.run(n, pluginImage, b.standin, i, false); err != nil {
			break
		}
		if err = condition.run(n, pluginImage, b.standin, i, true); err != nil {
			break
		}
	}
	if serr := n.Stop(); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	header()
	row("readiness detection (pod IP probed)", probe.detect, "p50≤150, p95≤300 ms", probe.detect.pct(0.5) <= 150*time.Millisecond && probe.detect.pct(0.95) <= 300*time.Millisecond)
	row("readiness detection (Ready condition, Service)", condition.detect, "", true)
	row("plugin overhead (start → SC running in pod)", probe.overhead, "", true)
	row("time to ready (pod IP probed)", probe.toReady, "", true)
	row("time to ready (Ready condition, Service)", condition.toReady, "", true)
	row("stop step (begins → SC ended, step done)", probe.stopStep, "", true)
	row("stop (begins → tunnel pod object gone)", probe.stop, "", true)
	return nil
}

// kubeSample is what one way of handing on the tunnel measured.
type kubeSample struct {
	detect, overhead, toReady, stop, stopStep sample
}

// run runs one build pod: start, then stop, and records the times.
func (k *kubeSample) run(n *testenv.Node, pluginImage, standin string, i int, service bool) error {
	build := fmt.Sprintf("%d%s", i, testenv.Random(4))
	env := func(action string) map[string]string {
		return map[string]string{"HARNESS_PIPELINE_ID": "bench", "HARNESS_STAGE_ID": "k8s", "HARNESS_BUILD_ID": build,
			"PLUGIN_ACTION": action, "PLUGIN_DEBUG": "true", "PLUGIN_BACKEND": "kubernetes", "PLUGIN_USERNAME": "bench", "PLUGIN_ACCESS_KEY": "bench-key-0000",
			"PLUGIN_REST_CONFIRM": "false", "PLUGIN_REST_URL": "http://127.0.0.1:9",
			"PLUGIN_REGION": "us-west", "PLUGIN_IMAGE": standin, "PLUGIN_PULL": "never", "PLUGIN_KUBERNETES_SERVICE": strconv.FormatBool(service),
			"PLUGIN_ENV": fmt.Sprintf(`{"SAUCE_STANDIN_READY_DELAY":%q}`, readyDelay.String())}
	}
	b, err := n.NewBuildPod("bench-"+build, nil,
		testenv.Step{Name: "start", Image: pluginImage, Env: env("start")},
		testenv.Step{Name: "stop", Image: pluginImage, Env: env("stop")})
	if b != nil {
		defer b.Delete()
	}
	if err != nil {
		return err
	}
	if code, err := b.Run("start"); err != nil || code != 0 {
		logs, _ := b.Logs("start", false)
		return fmt.Errorf("start step: exit %d, %v\n%s", code, err, logs)
	}
	logs, err := b.Logs("start", true)
	if err != nil {
		return err
	}
	first, up, err := stamps(logs, " is up")
	if err != nil {
		return err
	}
	pods, err := n.Admin.ListPods(context.Background(), b.NS, "io.drone-sauce-connect.role=tunnel")
	if err != nil || len(pods) != 1 {
		return fmt.Errorf("tunnel pod: %v (%d found)", err, len(pods))
	}
	tunnel := pods[0].Metadata.Name
	sc, err := n.Logs(b.NS, tunnel, "sauce-connect", true)
	if err != nil {
		return err
	}
	scFirst, _, err := stamps(sc, "")
	if err != nil {
		return err
	}
	m := readyAt.FindStringSubmatch(sc)
	if m == nil {
		return errors.New("the stand-in did not log its ready instant")
	}
	ns, _ := strconv.ParseInt(m[1], 10, 64)
	k.detect = append(k.detect, up.Sub(time.Unix(0, ns)))
	k.overhead = append(k.overhead, scFirst.Sub(first))
	k.toReady = append(k.toReady, up.Sub(first))

	gone := make(chan time.Time, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := n.Admin.GetPod(ctx, b.NS, tunnel); kubeapi.IsNotFound(err) {
				gone <- time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if code, err := b.Run("stop"); err != nil || code != 0 {
		return fmt.Errorf("stop step: exit %d, %v", code, err)
	}
	if logs, err = b.Logs("stop", true); err != nil {
		return err
	}
	began, stopped, err := stamps(logs, " stopped (pod ")
	if err != nil {
		return err
	}
	k.stopStep = append(k.stopStep, stopped.Sub(began))
	select {
	case at := <-gone:
		k.stop = append(k.stop, at.Sub(began))
	case <-ctx.Done():
		return fmt.Errorf("tunnel pod %s not gone after the stop step", tunnel)
	}
	return nil
}

// stamps reads a log with the kubelet's timestamps: the time of the first
// line, and of the first line containing marker (when marker is given).
// The first line is the plugin's debug line of its version, printed as it
// starts.
func stamps(logs, marker string) (first, marked time.Time, err error) {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		ts, line, _ := strings.Cut(sc.Text(), " ")
		t, perr := time.Parse(time.RFC3339Nano, ts)
		if perr != nil {
			continue
		}
		if first.IsZero() {
			first = t
		}
		if marker != "" && marked.IsZero() && strings.Contains(line, marker) {
			marked = t
		}
	}
	switch {
	case first.IsZero():
		err = fmt.Errorf("no timestamped line in:\n%s", logs)
	case marker != "" && marked.IsZero():
		err = fmt.Errorf("no line with %q in:\n%s", marker, logs)
	}
	return first, marked, err
}
