package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KubeBin is where testdata/kube-tools/build.sh puts etcd, kube-apiserver
// and kube-controller-manager.
func KubeBin() string { return filepath.Join(Root(), "testdata", "kube-tools", "bin") }

// KubeUser is a user of the test API server, authenticated by a static token.
type KubeUser struct {
	Name, Token string
	Groups      []string
}

// ControlPlane is a real Kubernetes control plane on loopback: etcd,
// kube-apiserver (token authentication, RBAC) and kube-controller-manager
// (garbage collector, service accounts). There is no scheduler or kubelet:
// tests write pod status themselves.
type ControlPlane struct {
	URL string
	// CA is the PEM certificate the API server serves (self-signed).
	CA    []byte
	dir   string
	procs []*proc
}

// StartControlPlane starts the control plane with these users; the first
// should be an admin (group system:masters).
func StartControlPlane(users []KubeUser) (*ControlPlane, error) {
	return startControlPlane(users, "127.0.0.1", "garbagecollector,serviceaccount,serviceaccount-token,namespace")
}

// startControlPlane starts the control plane with its API server on addr
// and these controllers of the controller manager. The free ports it picks
// are free when picked: a process of another test package may take one
// before etcd or the API server binds it, and then it starts again.
func startControlPlane(users []KubeUser, addr, controllers string) (*ControlPlane, error) {
	for attempt := 1; ; attempt++ {
		cp, err := startControlPlaneOnce(users, addr, controllers)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return cp, err
		}
	}
}

func startControlPlaneOnce(users []KubeUser, addr, controllers string) (*ControlPlane, error) {
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(KubeBin(), b)); err != nil {
			return nil, fmt.Errorf("%s is not built (run make kube-tools): %w", b, err)
		}
	}
	dir, err := os.MkdirTemp("", "dsc-kube-")
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{dir: dir}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	cp.URL = "https://" + net.JoinHostPort(addr, strconv.Itoa(ports[2]))
	if err := writeSAKey(dir); err != nil {
		return nil, err
	}
	var tokens strings.Builder
	for i, u := range users {
		fmt.Fprintf(&tokens, "%s,%s,uid-%d,\"%s\"\n", u.Token, u.Name, i, strings.Join(u.Groups, ","))
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens.String()), 0o600); err != nil {
		return nil, err
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: t, context: {cluster: t, user: admin}}]
current-context: t
`, cp.URL, users[0].Token)
	if err := os.WriteFile(filepath.Join(dir, "admin.kubeconfig"), []byte(kubeconfig), 0o600); err != nil {
		return nil, err
	}
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	fail := func(err error) (*ControlPlane, error) {
		cp.Stop()
		return nil, err
	}
	start := cp.start
	if err := start("etcd", "--name", "t", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "t="+peer,
		"--unsafe-no-fsync", "--log-level", "warn"); err != nil {
		return fail(err)
	}
	if err := start("kube-apiserver", "--etcd-servers", etcdURL, "--bind-address", addr, "--advertise-address", addr,
		"--secure-port", strconv.Itoa(ports[2]), "--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"), "--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.96.0.0/24", "--kubelet-preferred-address-types", "InternalIP,Hostname",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key")); err != nil {
		return fail(err)
	}
	if err := cp.waitReady(users[0].Token, 60*time.Second); err != nil {
		return fail(err)
	}
	if cp.CA, err = os.ReadFile(filepath.Join(dir, "certs", "apiserver.crt")); err != nil {
		return fail(err)
	}
	if err := start("kube-controller-manager", "--kubeconfig", filepath.Join(dir, "admin.kubeconfig"), "--leader-elect=false",
		"--service-account-private-key-file", filepath.Join(dir, "sa.key"), "--use-service-account-credentials=false",
		"--root-ca-file", filepath.Join(dir, "certs", "apiserver.crt"), "--bind-address", "127.0.0.1", "--secure-port", "0",
		"--authentication-skip-lookup", "--controllers", controllers); err != nil {
		return fail(err)
	}
	return cp, nil
}

// start starts one component from KubeBin, its output in a log of its name.
func (cp *ControlPlane) start(name string, args ...string) error {
	p, err := startLogged(cp.dir, filepath.Join(KubeBin(), name), args...)
	if err == nil {
		cp.procs = append(cp.procs, p)
	}
	return err
}

// AdminKubeconfig is a kubeconfig file for the first (admin) user, as a
// runner in the cluster is given one.
func (cp *ControlPlane) AdminKubeconfig() string { return filepath.Join(cp.dir, "admin.kubeconfig") }

// proc is a started process, and done once it has exited.
type proc struct {
	*exec.Cmd
	done chan struct{}
}

// startLogged starts a process that dies with the test, its output in
// dir/<its name>.log.
func startLogged(dir, path string, args ...string) (*proc, error) {
	return startLoggedEnv(dir, nil, path, args...)
}

// startLoggedEnv is startLogged with env added to the test's environment.
func startLoggedEnv(dir string, env []string, path string, args ...string) (*proc, error) {
	log, err := os.Create(filepath.Join(dir, filepath.Base(path)+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// exited names the first of procs that has exited, with its log's end.
func exited(procs []*proc, log func(name string) string) error {
	for _, p := range procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v): %s", p.Path, p.ProcessState, log(filepath.Base(p.Path)))
		default:
		}
	}
	return nil
}

// stop ends the process: SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	_ = p.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.Process.Kill()
		<-p.done
	}
}

func (cp *ControlPlane) waitReady(token string, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test API server
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, cp.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := exited(cp.procs, cp.Log); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready in %s:\n%s", limit, cp.Log("kube-apiserver"))
}

// Log returns the end of one component's log.
func (cp *ControlPlane) Log(name string) string {
	b, _ := os.ReadFile(filepath.Join(cp.dir, name+".log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop ends the components and removes their files.
func (cp *ControlPlane) Stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		cp.procs[i].stop(10 * time.Second)
	}
	_ = os.RemoveAll(cp.dir)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeSAKey writes the service-account signing key pair.
func writeSAKey(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}
