package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// The one node's network: a bridge of its own (created before anything
// else, so the API server can listen on its address and pods reach it
// through kube-proxy as the real `kubernetes` Service) in a range that
// neither Docker's default pools nor its test networks use.
const (
	NodeName    = "dsc-node"
	nodeBridge  = "dscbr0"
	nodeSubnet  = "10.244.77.0/24"
	NodeIP      = "10.244.77.1"
	cniNetwork  = "dsc-node"
	serviceCIDR = "10.96.0.0/24"
)

// Node is a real one-node Kubernetes cluster: the control plane (all
// controllers, the API server on the node's bridge address), kube-scheduler,
// a kubelet on a private containerd (not Docker's), the bridge and firewall
// CNI plugins and kube-proxy in nftables mode, so pods really run, probes
// really probe and a ClusterIP Service really routes. Images come from the
// Docker engine by `docker save | ctr images import`; nothing is pulled.
//
// It changes the host and Stop undoes every change: processes (containerd
// shims too), mounts, network namespaces, the bridge, iptables chains,
// nftables tables, cgroups, kernel settings and files outside its directory.
type Node struct {
	*ControlPlane
	// Admin is a client of the first user's.
	Admin   *kubeapi.Client
	dir     string
	sock    string
	procs   []*proc
	admin   string
	before  hostState
	sysctls map[string]string
	Sandbox string // the pause image
	started bool   // the kubelet and the other node components
}

// DronePlaceholder is the image drone-runner-kube starts every step in.
const DronePlaceholder = "drone/placeholder:1"

// NodeTools are the binaries and packages the node needs beyond KubeBin.
var NodeTools = []string{"/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc", "/usr/lib/cni/bridge", "/usr/lib/cni/firewall", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", "/usr/sbin/nft", "/usr/sbin/iptables", "/usr/sbin/ip"}

// kernelSettings are the sysctls the kubelet and kube-proxy may change.
var kernelSettings = []string{"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/conf/all/route_localnet", "net/bridge/bridge-nf-call-iptables", "net/ipv4/ip_forward"}

// StartNode starts the cluster with these users (the first an admin) and
// imports the images (tags in the Docker engine) into the node.
func StartNode(users []KubeUser, images ...string) (n *Node, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the node tier needs root (it runs a kubelet)")
	}
	for _, b := range []string{"kubelet", "kube-scheduler", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(KubeBin(), b)); err != nil {
			return nil, fmt.Errorf("%s is not built (run make kube-tools): %w", b, err)
		}
	}
	for _, t := range NodeTools {
		if _, err := os.Stat(t); err != nil {
			return nil, fmt.Errorf("%s is missing (apt-get install containerd runc containernetworking-plugins nftables iproute2): %w", t, err)
		}
	}
	// Short: containerd's socket path must fit in a sockaddr.
	dir, err := os.MkdirTemp("", "dscn-")
	if err != nil {
		return nil, err
	}
	n = &Node{dir: dir, sock: filepath.Join(dir, "containerd.sock"), admin: users[0].Token, before: readHostState(), sysctls: map[string]string{}}
	for _, k := range kernelSettings {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			n.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	if exec.Command("ip", "link", "show", nodeBridge).Run() == nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("bridge %s exists: another node tier runs on this host (or one was killed: then ip link delete %s)", nodeBridge, nodeBridge)
	}
	defer func() {
		if err != nil {
			if lerr := n.Stop(); lerr != nil {
				err = errors.Join(err, lerr)
			}
			n = nil
		}
	}()
	if err := n.bridge(); err != nil {
		return n, err
	}
	if n.ControlPlane, err = startControlPlane(users, NodeIP, "*"); err != nil {
		return n, err
	}
	if n.Admin, err = kubeapi.New(kubeapi.Config{Host: n.URL, Token: n.admin, CA: n.CA}); err != nil {
		return n, err
	}
	if err := n.containerd(); err != nil {
		return n, err
	}
	rm, err := PauseImage(n.Sandbox)
	if err != nil {
		return n, err
	}
	err = n.Import(n.Sandbox)
	rm()
	if err != nil {
		return n, err
	}
	// drone-runner-kube's placeholder, under the name its compiler gives
	// every step container: a name in the node's store only.
	if err := n.ctr("images", "tag", "docker.io/library/"+n.Sandbox, "docker.io/"+DronePlaceholder); err != nil {
		return n, err
	}
	for _, img := range images {
		if err := n.Import(img); err != nil {
			return n, err
		}
	}
	if err := n.components(); err != nil {
		return n, err
	}
	return n, n.waitNodeReady(60 * time.Second)
}

// bridge creates the node's bridge with its address, so that the API
// server can listen there before any pod exists (the CNI bridge plugin
// takes it as it finds it).
func (n *Node) bridge() error {
	for _, args := range [][]string{
		{"link", "add", nodeBridge, "type", "bridge"},
		{"addr", "add", NodeIP + "/24", "dev", nodeBridge},
		{"link", "set", nodeBridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// containerd starts a containerd of the node's own, with CRI, runc under
// cgroupfs and the CNI configuration. restrict_oom_score_adj: here the
// process lacks CAP_SYS_RESOURCE, and a sandbox's oom_score_adj of -998
// would fail every pod ("can't get final child's PID from pipe").
func (n *Node) containerd() error {
	// The sandbox image is imported right after containerd starts.
	n.Sandbox = "dsc-pause:" + Random(8)
	cni := filepath.Join(n.dir, "cni")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		return err
	}
	conflist := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": %q, "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": %q}]}},
  {"type": "firewall", "backend": "iptables"}
]}`, cniNetwork, nodeBridge, filepath.Join(n.dir, "ipam"), nodeSubnet, NodeIP, serviceCIDR)
	if err := os.WriteFile(filepath.Join(cni, "10-dsc-node.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(n.dir, "root"), filepath.Join(n.dir, "state"), n.sock, "docker.io/library/"+n.Sandbox, filepath.Join(n.dir, "runc"), cni)
	path := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return err
	}
	if err := n.start("/usr/bin/containerd", "--config", path); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if n.ctr("version") == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("containerd did not answer in 20s: %s", n.Log("containerd"))
}

// components starts kube-scheduler, the kubelet and kube-proxy.
func (n *Node) components() error {
	kubeconfig := filepath.Join(n.ControlPlane.dir, "admin.kubeconfig")
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	// Nothing can be pulled back, so the imported images are never
	// collected, and a nearly full disk does not evict the test pods.
	kubelet := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
address: %s
port: %d
healthzPort: 0
readOnlyPort: 0
podLogsDir: %s
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
serializeImagePulls: false
`, NodeIP, ports[0], filepath.Join(n.dir, "pod-logs"))
	proxy := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
clusterCIDR: %s
bindAddress: %s
healthzBindAddress: ""
metricsBindAddress: 127.0.0.1:%d
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}
`, kubeconfig, NodeName, nodeSubnet, NodeIP, ports[1])
	for name, text := range map[string]string{"kubelet.yaml": kubelet, "kube-proxy.yaml": proxy} {
		if err := os.WriteFile(filepath.Join(n.dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	if err := n.start(filepath.Join(KubeBin(), "kube-scheduler"), "--kubeconfig", kubeconfig, "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", "0"); err != nil {
		return err
	}
	if err := n.start(filepath.Join(KubeBin(), "kubelet"), "--config", filepath.Join(n.dir, "kubelet.yaml"),
		"--kubeconfig", kubeconfig, "--container-runtime-endpoint", "unix://"+n.sock,
		"--hostname-override", NodeName, "--node-ip", NodeIP,
		"--root-dir", filepath.Join(n.dir, "kubelet"), "--cert-dir", filepath.Join(n.dir, "kubelet-pki")); err != nil {
		return err
	}
	n.started = true
	return n.start(filepath.Join(KubeBin(), "kube-proxy"), "--config", filepath.Join(n.dir, "kube-proxy.yaml"))
}

// start starts a node process, its output in a log of its name.
func (n *Node) start(path string, args ...string) error {
	p, err := startLogged(n.dir, path, args...)
	if err == nil {
		n.procs = append(n.procs, p)
	}
	return err
}

// Log returns the end of one component's log (node or control plane).
func (n *Node) Log(name string) string {
	b, err := os.ReadFile(filepath.Join(n.dir, name+".log"))
	if err != nil && n.ControlPlane != nil {
		return n.ControlPlane.Log(name)
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// ctr runs containerd's client against the node's containerd, in the CRI
// namespace.
func (n *Node) ctr(args ...string) error {
	cmd := exec.Command("ctr", append([]string{"--address", n.sock, "--namespace", "k8s.io"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Import copies an image from the Docker engine into the node, under the
// name a pod gives it (docker.io/library/… for a short tag).
func (n *Node) Import(tag string) error {
	save := exec.Command("docker", "save", tag)
	imp := exec.Command("ctr", "--address", n.sock, "--namespace", "k8s.io", "images", "import", "--no-unpack=false", "-")
	pipe, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	imp.Stdin = pipe
	var out bytes.Buffer
	save.Stderr, imp.Stdout, imp.Stderr = &out, &out, &out
	if err := save.Start(); err != nil {
		return err
	}
	ierr := imp.Run()
	serr := save.Wait()
	if err := errors.Join(serr, ierr); err != nil {
		return fmt.Errorf("import %s into the node: %w: %s", tag, err, out.String())
	}
	return nil
}

// Logs returns a container's log; with timestamps, each line begins with
// the kubelet's RFC 3339 time of it. (The log API answers text, which
// Admin, a JSON client, does not read.)
func (n *Node) Logs(ns, pod, container string, timestamps bool) (string, error) {
	path := fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/log?container=%s&timestamps=%t", ns, pod, container, timestamps)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, n.URL+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+n.admin)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test API server
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("log of %s/%s/%s: %d %s", ns, pod, container, resp.StatusCode, b)
	}
	return string(b), err
}

// waitNodeReady waits until the node reports Ready.
func (n *Node) waitNodeReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var node struct {
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		}
		if n.Admin.Do(context.Background(), http.MethodGet, "/api/v1/nodes/"+NodeName, nil, &node) == nil {
			for _, c := range node.Status.Conditions {
				if c.Type == "Ready" && c.Status == "True" {
					return nil
				}
			}
		}
		if err := exited(n.procs, n.Log); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("node not Ready in %s; kubelet:\n%s", limit, n.Log("kubelet"))
}

// Stop deletes every pod, waits for the kubelet to stop them (so the CNI
// plugins remove their addresses and rules), stops everything, undoes what
// the node did to the host, and says what is left all the same.
func (n *Node) Stop() error {
	if n.started {
		n.drain(30 * time.Second)
	}
	for i := len(n.procs) - 1; i >= 0; i-- {
		p := n.procs[i]
		if filepath.Base(p.Path) == "containerd" {
			// The kubelet is gone: kill what still runs, then containerd.
			n.killTasks()
		}
		p.stop(10 * time.Second)
	}
	if n.ControlPlane != nil {
		n.ControlPlane.Stop()
	}
	n.undoHost()
	// The imported images lived in the node's containerd, under dir.
	_ = os.RemoveAll(n.dir)
	return n.leftovers()
}

// leftovers lists what the node left on the host.
func (n *Node) leftovers() error {
	var left []string
	if out, _ := exec.Command("pgrep", "-a", "-f", n.dir).Output(); len(bytes.TrimSpace(out)) > 0 {
		left = append(left, "processes: "+string(bytes.TrimSpace(out)))
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(b, []byte(n.dir)) {
		left = append(left, "mounts under "+n.dir)
	}
	if _, err := os.Stat(n.dir); err == nil {
		left = append(left, "directory "+n.dir)
	}
	if exec.Command("ip", "link", "show", nodeBridge).Run() == nil {
		left = append(left, "bridge "+nodeBridge)
	}
	for t := range nftTables() {
		if !n.before.tables[t] {
			left = append(left, "nftables table "+t)
		}
	}
	for _, d := range hostDirs {
		if _, err := os.Stat(d); err == nil && !n.before.dirs[d] {
			left = append(left, fmt.Sprintf("directory %s (holding %s)", d, strings.Join(slices.Sorted(maps.Keys(dirNames(d))), ", ")))
		}
	}
	for c := range iptablesChains() {
		if !n.before.chains[c] {
			left = append(left, "iptables chain "+c)
		}
	}
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods"); len(dirs) > 0 {
		left = append(left, "cgroups "+strings.Join(dirs, " "))
	}
	for name := range dirNames("/run/netns") {
		if !n.before.netns[name] {
			left = append(left, "network namespace "+name)
		}
	}
	for k, v := range n.sysctls {
		if b, _ := os.ReadFile("/proc/sys/" + k); strings.TrimSpace(string(b)) != v {
			left = append(left, fmt.Sprintf("sysctl %s = %s (was %s)", k, strings.TrimSpace(string(b)), v))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("the node left behind: %s", strings.Join(left, "; "))
	}
	return nil
}

// drain deletes every pod at once and waits until no container runs.
func (n *Node) drain(limit time.Duration) {
	ctx := context.Background()
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if n.Admin.Do(ctx, http.MethodGet, "/api/v1/namespaces", nil, &list) == nil {
		for _, ns := range list.Items {
			_ = n.Admin.Do(ctx, http.MethodDelete, "/api/v1/namespaces/"+ns.Metadata.Name+"/pods?gracePeriodSeconds=0", nil, nil)
		}
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && len(n.runningTasks()) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
}

// runningTasks lists the node's containers that still run.
func (n *Node) runningTasks() []string {
	out, err := exec.Command("ctr", "--address", n.sock, "--namespace", "k8s.io", "tasks", "ls").Output()
	if err != nil {
		return nil
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[2] == "RUNNING" {
			ids = append(ids, f[0])
		}
	}
	return ids
}

// killTasks kills and deletes every task and container left in the node's
// containerd, so their shims exit and their mounts go.
func (n *Node) killTasks() {
	out, _ := exec.Command("ctr", "--address", n.sock, "--namespace", "k8s.io", "tasks", "ls", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		_ = n.ctr("tasks", "kill", "-s", "SIGKILL", id)
		_ = n.ctr("tasks", "delete", "-f", id)
	}
	out, _ = exec.Command("ctr", "--address", n.sock, "--namespace", "k8s.io", "containers", "ls", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		_ = n.ctr("containers", "delete", id)
	}
}

// hostState is what the node may add to the host, as it was before.
type hostState struct {
	chains  map[string]bool // "table chain" of iptables
	tables  map[string]bool // "family table" of nftables
	dirs    map[string]bool // directories the kubelet and the CNI create
	netns   map[string]bool
	results map[string]bool
}

func readHostState() hostState {
	dirs := map[string]bool{}
	for _, d := range hostDirs {
		if _, err := os.Stat(d); err == nil {
			dirs[d] = true
		}
	}
	return hostState{chains: iptablesChains(), tables: nftTables(), dirs: dirs, netns: dirNames("/run/netns"), results: dirNames("/var/lib/cni/results")}
}

// hostDirs are created by the kubelet and by containerd and its CNI use,
// deepest first. (containerd 1.6 keeps every shim's socket in
// /run/containerd/s whatever its state directory; Docker's own containerd
// does too, so that one is not ours to remove.)
var hostDirs = []string{"/var/log/containers", "/var/lib/cni/results", "/var/lib/cni", "/run/netns", "/run/containerd/runc/k8s.io", "/run/containerd/runc"}

// nftTables lists the nftables tables; iptables-nft and kube-proxy add some.
func nftTables() map[string]bool {
	out := map[string]bool{}
	b, _ := exec.Command("nft", "list", "tables").Output()
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "table" {
			out[f[1]+" "+f[2]] = true
		}
	}
	return out
}

func dirNames(dir string) map[string]bool {
	out := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// iptablesChains are the KUBE- and CNI- chains of every table.
func iptablesChains() map[string]bool {
	out := map[string]bool{}
	for _, table := range []string{"filter", "nat", "mangle"} {
		b, _ := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "-N" && (strings.HasPrefix(f[1], "KUBE-") || strings.HasPrefix(f[1], "CNI-")) {
				out[table+" "+f[1]] = true
			}
		}
	}
	return out
}

// undoHost removes what the node added to the host and was not there
// before: mounts under its directory, network namespaces, the CNI's cached
// results, the bridge, kube-proxy's nftables tables, iptables chains, the
// kubepods cgroups and the pod log links; and restores the kernel settings.
func (n *Node) undoHost() {
	// Shims of killed tasks outlive containerd by design.
	_ = exec.Command("pkill", "-KILL", "-f", "containerd-shim.*"+n.sock).Run()
	unmountUnder(n.dir)
	for name := range dirNames("/run/netns") {
		if !n.before.netns[name] && strings.HasPrefix(name, "cni-") {
			_ = syscall.Unmount("/run/netns/"+name, syscall.MNT_DETACH)
			_ = os.Remove("/run/netns/" + name)
		}
	}
	for name := range dirNames("/var/lib/cni/results") {
		// The node's network's results, and those of the loopback network
		// containerd's CRI sets up in every sandbox (left when a sandbox
		// was killed rather than stopped).
		if !n.before.results[name] && (strings.HasPrefix(name, cniNetwork+"-") || strings.HasPrefix(name, "cni-loopback-")) {
			_ = os.Remove("/var/lib/cni/results/" + name)
		}
	}
	_ = exec.Command("ip", "link", "delete", nodeBridge).Run()
	n.removeChains()
	// kube-proxy's tables, and the ones iptables-nft made for the kubelet's
	// chains (empty now).
	for t := range nftTables() {
		if !n.before.tables[t] {
			family, table, _ := strings.Cut(t, " ")
			_ = exec.Command("nft", "delete", "table", family, table).Run()
		}
	}
	removeCgroups("kubepods")
	if links, _ := os.ReadDir("/var/log/containers"); links != nil {
		for _, l := range links {
			p := filepath.Join("/var/log/containers", l.Name())
			if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, n.dir) {
				_ = os.Remove(p)
			}
		}
	}
	for k, v := range n.sysctls {
		_ = os.WriteFile("/proc/sys/"+k, []byte(v), 0o644)
	}
	for _, d := range hostDirs { // deepest first; only when empty
		if !n.before.dirs[d] {
			_ = os.Remove(d)
		}
	}
}

// removeChains deletes the iptables chains the kubelet and the CNI
// firewall plugin added, with the rules that jump to them.
func (n *Node) removeChains() {
	now := iptablesChains()
	var added []string
	for c := range now {
		if !n.before.chains[c] {
			added = append(added, c)
		}
	}
	for _, c := range added {
		table, chain, _ := strings.Cut(c, " ")
		b, _ := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		for _, line := range strings.Split(string(b), "\n") {
			if f := ruleFields(line); len(f) > 2 && f[0] == "-A" && jumpsTo(f, chain) {
				_ = exec.Command("iptables", append([]string{"-w", "-t", table, "-D"}, f[1:]...)...).Run()
			}
		}
	}
	for _, c := range added {
		table, chain, _ := strings.Cut(c, " ")
		_ = exec.Command("iptables", "-w", "-t", table, "-F", chain).Run()
	}
	for _, c := range added {
		table, chain, _ := strings.Cut(c, " ")
		_ = exec.Command("iptables", "-w", "-t", table, "-X", chain).Run()
	}
}

// ruleFields splits a line of `iptables -S` into its arguments, a quoted
// comment as one.
func ruleFields(line string) []string {
	var out []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// jumpsTo says whether a rule's fields jump to chain.
func jumpsTo(rule []string, chain string) bool {
	for i := 0; i+1 < len(rule); i++ {
		if rule[i] == "-j" && rule[i+1] == chain {
			return true
		}
	}
	return false
}

// unmountUnder lazily unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// removeCgroups removes the named cgroup tree from every cgroup v1
// hierarchy (and v2), leaves first.
func removeCgroups(name string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	roots = append(roots, "/sys/fs/cgroup/"+name)
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(dirs[i])
		}
	}
}

// PauseImage builds the image of the node's sandboxes and of the build
// pods' placeholder steps (internal/testenv/placeholder).
func PauseImage(tag string) (func(), error) {
	dir, err := os.MkdirTemp("", "dsc-pause-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := GoBuild("internal/testenv/placeholder", dir, "placeholder"); err != nil {
		return nil, err
	}
	df := "FROM scratch\nCOPY placeholder /bin/placeholder\nCOPY placeholder /bin/sh\nENTRYPOINT [\"/bin/placeholder\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return nil, err
	}
	return build(dir, tag)
}
