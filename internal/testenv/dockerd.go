package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dockerd is a second, real Docker engine beside the machine's: its own
// data-root, exec-root, pidfile, containerd namespace and bridge, serving
// its unix socket and TCP with --tlsverify and certificates made here. It
// plays an engine a pipeline reaches over TCP and TLS: a dind service, a
// remote engine. No iptables rules of its own: published ports go through
// docker-proxy, and the machine's engine is left as it was.
type Dockerd struct {
	// Socket is its unix socket (unix://…); TCP its TLS address on the
	// loopback (tcp://127.0.0.1:PORT), Remote the same port on its bridge's
	// address, which plays another host's: steps of the machine's engine
	// reach it there too.
	Socket, TCP, Remote string
	// ClientCerts holds ca.pem, cert.pem and key.pem for DOCKER_CERT_PATH;
	// OtherCA a ca.pem of another authority (a CA that does not match).
	ClientCerts, OtherCA string
	// Key is the client's private key, to search outputs for.
	Key    string
	dir    string
	bridge string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// DockerdHosts are the names and addresses the engine's certificate is for.
var DockerdHosts = []string{"localhost", "127.0.0.1", "docker"}

// StartDockerd starts the second engine listening with TLS (a free port)
// and loads the images into it from the machine's engine. The caller must
// Stop it. It needs root and dockerd.
func StartDockerd(images ...string) (d *Dockerd, err error) {
	if _, err := exec.LookPath("dockerd"); err != nil {
		return nil, fmt.Errorf("no dockerd (Debian's docker.io): %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("a second dockerd needs root")
	}
	// Short: the exec-root holds unix sockets, whose paths are limited.
	dir, err := os.MkdirTemp("", "dscd-")
	if err != nil {
		return nil, err
	}
	id := Random(6)
	d = &Dockerd{dir: dir, bridge: "dscd" + id, Socket: "unix://" + filepath.Join(dir, "docker.sock")}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	bridgeIP, err := d.makeBridge()
	if err != nil {
		return nil, err
	}
	if err := d.certs(append(DockerdHosts, bridgeIP)); err != nil {
		return nil, err
	}
	port, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	d.TCP = "tcp://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port[0]))
	d.Remote = "tcp://" + net.JoinHostPort(bridgeIP, strconv.Itoa(port[0]))
	server := filepath.Join(dir, "server")
	d.args = []string{
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "x"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "--bridge", d.bridge,
		"--iptables=false", "--ip-masq=false", "--containerd-namespace", "dscd-" + id, "--containerd-plugins-namespace", "dscd-" + id + "-plugins",
		"-H", d.Socket, "-H", d.TCP, "-H", d.Remote,
		"--tlsverify", "--tlscacert", filepath.Join(server, "ca.pem"), "--tlscert", filepath.Join(server, "cert.pem"), "--tlskey", filepath.Join(server, "key.pem")}
	if err := d.run(); err != nil {
		return nil, err
	}
	for _, img := range images {
		if err := d.load(img); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// run starts the engine's process and waits until it answers.
func (d *Dockerd) run() error {
	log, err := os.OpenFile(filepath.Join(d.dir, "dockerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	d.exited = make(chan struct{})
	d.cmd = exec.Command("dockerd", d.args...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	cmd, exited := d.cmd, d.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	return d.waitUp(60 * time.Second)
}

// Restart stops the engine as a host or a dind service does (SIGTERM: it
// stops its containers, giving each its StopTimeout), stays down for down,
// and starts it again on the same data: the containers are there, stopped.
func (d *Dockerd) Restart(down time.Duration) error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("the second dockerd did not stop in 60 s:\n%s", tail(d.Log(), 20))
	}
	// Its supervised containerd is in its process group.
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	time.Sleep(down)
	return d.run()
}

// Docker runs the docker CLI against this engine (its unix socket).
func (d *Dockerd) Docker(args ...string) (string, error) {
	return docker(append([]string{"-H", d.Socket}, args...)...)
}

// Log is the engine's own log.
func (d *Dockerd) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	return string(b)
}

func (d *Dockerd) waitUp(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := d.Docker("version", "--format", "{{.Server.Version}}"); err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("the second dockerd exited:\n%s", tail(d.Log(), 20))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the second dockerd did not come up in %s:\n%s", limit, tail(d.Log(), 20))
		}
	}
}

// load copies an image from the machine's engine into this one.
func (d *Dockerd) load(ref string) error {
	save := exec.Command("docker", "save", ref)
	load := exec.Command("docker", "-H", d.Socket, "load", "--quiet")
	pipe, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	load.Stdin = pipe
	var out strings.Builder
	load.Stdout, load.Stderr = &out, &out
	if err := save.Start(); err != nil {
		return err
	}
	if err := load.Run(); err != nil {
		_ = save.Wait()
		return fmt.Errorf("load %s into the second dockerd: %w: %s", ref, err, out.String())
	}
	return save.Wait()
}

// Stop removes every container, stops the engine and removes its bridge
// and files. It is safe to call twice.
func (d *Dockerd) Stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		if ids, err := d.Docker("ps", "-aq"); err == nil && ids != "" {
			_, _ = d.Docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.exited
		}
		// Its supervised containerd is in its process group.
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		d.cmd = nil
	}
	_ = exec.Command("ip", "link", "del", d.bridge).Run()
	unmountUnder(d.dir)
	_ = os.RemoveAll(d.dir)
}

// makeBridge creates the engine's own bridge, on an address range picked
// from the bridge's name, so that two engines of parallel tests differ.
func (d *Dockerd) makeBridge() (string, error) {
	n, _ := strconv.ParseUint(d.bridge[len(d.bridge)-4:], 16, 16)
	ip := fmt.Sprintf("10.%d.%d.1", 200+n%50, n/50%250)
	for _, args := range [][]string{
		{"link", "add", d.bridge, "type", "bridge"},
		{"addr", "add", ip + "/24", "dev", d.bridge},
		{"link", "set", d.bridge, "up"},
	} {
		if b, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, b)
		}
	}
	return ip, nil
}

// certs makes the engine's certificates in its folder.
func (d *Dockerd) certs(hosts []string) error {
	var err error
	d.ClientCerts, d.OtherCA, d.Key, err = MakeCerts(d.dir, hosts)
	return err
}

// MakeCerts makes a CA, an engine's server certificate for hosts and a
// client certificate, as docker:dind lays them out (ca.pem, cert.pem and
// key.pem in dir/server and dir/client), and in dir/other the same client
// pair with the ca.pem of another authority. It returns the client and
// other folders and the client's private key.
func MakeCerts(dir string, hosts []string) (client, other, key string, err error) {
	client, other = filepath.Join(dir, "client"), filepath.Join(dir, "other")
	return client, other, key, makeCerts(dir, hosts, &key)
}

func makeCerts(base string, hosts []string, keyOut *string) error {
	ca, caKey, err := newCA("dsc test CA")
	if err != nil {
		return err
	}
	server, client, otherDir := filepath.Join(base, "server"), filepath.Join(base, "client"), filepath.Join(base, "other")
	for _, dir := range []string{server, client, otherDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	if err := issue(ca, caKey, server, hosts, x509.ExtKeyUsageServerAuth); err != nil {
		return err
	}
	if err := issue(ca, caKey, client, nil, x509.ExtKeyUsageClientAuth); err != nil {
		return err
	}
	other, _, err := newCA("another CA")
	if err != nil {
		return err
	}
	for _, f := range []string{"cert.pem", "key.pem"} {
		b, err := os.ReadFile(filepath.Join(client, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(otherDir, f), b, 0o600); err != nil {
			return err
		}
	}
	if err := writePEM(filepath.Join(otherDir, "ca.pem"), "CERTIFICATE", other.Raw, 0o644); err != nil {
		return err
	}
	key, err := os.ReadFile(filepath.Join(client, "key.pem"))
	*keyOut = string(key)
	return err
}

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// issue writes ca.pem, cert.pem and key.pem (0600) into dir: a certificate
// signed by ca for hosts (DNS names and IPs), for the given use.
func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, dir string, hosts []string, use x509.ExtKeyUsage) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "dsc " + filepath.Base(dir)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{use},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return errors.Join(
		writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw, 0o644),
		writePEM(filepath.Join(dir, "cert.pem"), "CERTIFICATE", der, 0o644),
		writePEM(filepath.Join(dir, "key.pem"), "EC PRIVATE KEY", keyDER, 0o600))
}

func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), mode)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
