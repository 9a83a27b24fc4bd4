package testhosts_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

func TestHostsHaveOwnAddresses(t *testing.T) {
	t.Parallel()
	e := testhosts.New(t, testhosts.Options{Hosts: 2})
	ctx := t.Context()

	seen := map[string]bool{}
	for _, h := range append([]*testhosts.Host{e.Git}, e.Hosts...) {
		ip := net.ParseIP(h.Addr).To4()
		if ip == nil || ip[0] != 127 || (ip[1] == 0 && ip[2] == 0) {
			t.Errorf("%s: Addr %q, want 127.X.Y.Z outside 127.0.0.0/24", h.User, h.Addr)
		}
		if seen[h.Addr] {
			t.Errorf("%s: Addr %s used twice", h.User, h.Addr)
		}
		seen[h.Addr] = true
		if want := "[" + h.Addr + "]:" + itoa(h.Port) + " "; !strings.HasPrefix(h.HostKeyLine, want) {
			t.Errorf("%s: HostKeyLine %q, want it to start with %q", h.User, h.HostKeyLine, want)
		}
	}
	for _, h := range e.Hosts {
		if want := h.User + "@" + h.Addr + ":" + itoa(h.Port); h.Name != want {
			t.Errorf("Name = %q, want %q", h.Name, want)
		}
		// The server address the session sees is the host's own.
		f := strings.Fields(output(t, e.SSH(ctx, h, "sh", "-c", `echo "$SSH_CONNECTION"`)))
		if len(f) != 4 || f[2] != h.Addr {
			t.Errorf("%s: SSH_CONNECTION %q, want server address %s", h.Name, f, h.Addr)
		}
		// sshd listens on the host's address only.
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", itoa(h.Port)), time.Second); err == nil {
			c.Close()
			t.Errorf("%s: port %d answers on 127.0.0.1 too", h.Name, h.Port)
		}
	}
	if want := "ssh://" + e.Git.User + "@" + e.Git.Addr + ":" + itoa(e.Git.Port) + "/"; !strings.HasPrefix(e.RepoURL, want) {
		t.Errorf("RepoURL = %q, want it to start with %q", e.RepoURL, want)
	}

	// A second Env gets another /24.
	e2 := testhosts.New(t, testhosts.Options{Hosts: 1})
	if a, b := e.Hosts[0].Addr, e2.Hosts[0].Addr; a[:strings.LastIndexByte(a, '.')] == b[:strings.LastIndexByte(b, '.')] {
		t.Errorf("two Envs share a /24: %s and %s", a, b)
	}
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// restart runs e.RestartCmd(port) on h with RELEASE_DIR=rel, as the
// deployer does, and fails the test unless it ends within 10s. It returns
// the combined output and the error.
func restart(t *testing.T, e *testhosts.Env, h *testhosts.Host, rel string, port int) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := e.SSH(ctx, h, "env", "RELEASE_DIR="+rel, "sh", "-c", e.RestartCmd(port))
	cmd.WaitDelay = time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("restart took %v (want < 10s: a server holding the session open?); output: %s", d, out)
	}
	return string(out), err
}

// running reports whether pid is a live process (not a zombie).
func running(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "State:"); ok {
			s := strings.TrimSpace(rest)
			return s != "" && s[0] != 'Z' && s[0] != 'X'
		}
	}
	return false
}

// freeAddrPort returns a port free on addr.
func freeAddrPort(t *testing.T, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestRestartCmdServesHealth(t *testing.T) {
	t.Parallel()
	e := testhosts.New(t, testhosts.Options{Hosts: 2})
	ctx := t.Context()
	h, other := e.Hosts[0], e.Hosts[1]

	// A release folder as the deployer leaves it: app, venv and REVISION.
	rel := h.Path("rel")
	for name, content := range e.AppFiles("2.0") {
		cmd := e.SSH(ctx, h, "sh", "-c", `mkdir -p rel && cat > "rel/$1"`, "sh", name)
		cmd.Stdin = strings.NewReader(content)
		output(t, cmd)
	}
	output(t, e.SSH(ctx, h, "sh", "-c", `cd rel && echo abc123 > REVISION &&
python3 -m venv venv && venv/bin/pip install -q -r requirements.txt`))

	port := freeAddrPort(t, h.Addr)
	out, err := restart(t, e, h, rel, port)
	if err != nil {
		t.Fatalf("restart: %v: %s", err, out)
	}
	if code, body := get(t, h.HealthURL(port)); code != 200 || body != "ok 2.0 abc123" {
		t.Errorf("health: %d %q, want 200 \"ok 2.0 abc123\"", code, body)
	}
	if code, body := get(t, strings.TrimSuffix(h.HealthURL(port), "health")); code != 200 || body != "2.0" {
		t.Errorf("/: %d %q, want 200 \"2.0\"", code, body)
	}
	// The server is bound to its host's address only.
	for _, addr := range []string{other.Addr, "127.0.0.1"} {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, itoa(port)), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d answers on %s too", port, addr)
		}
	}

	if err := h.SetUnhealthy(true); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, h.HealthURL(port)); code != 500 || body != "unhealthy" {
		t.Errorf("health after SetUnhealthy(true): %d %q, want 500 \"unhealthy\"", code, body)
	}
	if err := h.SetUnhealthy(false); err != nil {
		t.Fatal(err)
	}
	if err := h.SetUnhealthy(false); err != nil {
		t.Errorf("SetUnhealthy(false) twice: %v", err)
	}
	if code, _ := get(t, h.HealthURL(port)); code != 200 {
		t.Errorf("health after SetUnhealthy(false): %d, want 200", code)
	}

	// Restarting replaces the server.
	pid1 := readPid(t, h)
	if out, err := restart(t, e, h, rel, port); err != nil {
		t.Fatalf("second restart: %v: %s", err, out)
	}
	pid2 := readPid(t, h)
	if pid2 == pid1 || running(pid1) || !running(pid2) {
		t.Errorf("after restart: old pid %s running %v, new pid %s running %v; want a new server only",
			pid1, running(pid1), pid2, running(pid2))
	}
	if cmdline, _ := os.ReadFile("/proc/" + pid2 + "/cmdline"); !strings.Contains(string(cmdline), rel+"/app.py") {
		t.Errorf("pid %s runs %q, want app.py", pid2, cmdline)
	}
	if code, _ := get(t, h.HealthURL(port)); code != 200 {
		t.Errorf("health after restart: %d, want 200", code)
	}

	// An app that cannot start fails the command with its log.
	output(t, e.SSH(ctx, h, "sh", "-c", `mkdir bad && ln -s ../rel/venv bad/venv &&
echo 'raise SystemExit("boom: no app here")' > bad/app.py`))
	out, err = restart(t, e, h, h.Path("bad"), port)
	if err == nil || !strings.Contains(out, "boom: no app here") {
		t.Errorf("restart of a broken app: %v, output %q; want failure with the log", err, out)
	}

	// Close stops app servers along with everything else.
	if out, err := restart(t, e, h, rel, port); err != nil {
		t.Fatalf("third restart: %v: %s", err, out)
	}
	pid3 := readPid(t, h)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if running(pid3) {
		t.Errorf("app server %s still runs after Close", pid3)
	}
}

// readPid returns the pid RestartCmd wrote.
func readPid(t *testing.T, h *testhosts.Host) string {
	t.Helper()
	b, err := os.ReadFile(h.Path("app.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("app.pid = %q: %v", b, err)
	}
	return pid
}

// TestAppRunsWithoutSSH: outside SSH the app binds 127.0.0.1, and the
// older command line forms still work.
func TestAppRunsWithoutSSH(t *testing.T) {
	t.Parallel()
	testhosts.NeedTools(t, "python3")
	e := testhosts.New(t, testhosts.Options{Hosts: 0})
	dir := t.TempDir()
	for name, content := range e.AppFiles("1.0") {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// pdtestdep without a venv: a plain module on PYTHONPATH.
	if err := os.Mkdir(filepath.Join(dir, "pdtestdep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pdtestdep", "__init__.py"), []byte("VERSION = \"1.0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freeAddrPort(t, "127.0.0.1")
	cmd := exec.CommandContext(t.Context(), "python3", filepath.Join(dir, "app.py"), itoa(port))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir, "HOME="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	url := "http://" + net.JoinHostPort("127.0.0.1", itoa(port)) + "/health"
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", itoa(port)), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app.py PORT-argument form never listened: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get(t, url); code != 200 || body != "ok 1.0" {
		t.Errorf("health: %d %q, want 200 \"ok 1.0\"", code, body)
	}
}
