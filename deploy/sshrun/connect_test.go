package sshrun

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// newBareRunner is a Runner with no keys and an empty known_hosts: enough
// for tests that never get as far as a host key.
func newBareRunner(t *testing.T, connectTimeout time.Duration) *Runner {
	t.Helper()
	known := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, known, "")
	r, err := New(Config{KnownHosts: known, ConnectTimeout: connectTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func loopbackHost(port int) deploy.Host {
	return deploy.Host{Name: "web1", User: "deploy", Addr: "127.0.0.1", Port: port}
}

// dialGoroutines returns the stacks of the goroutines that Dial runs or
// started (its context.AfterFunc among them).
func dialGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sshrun.(*Runner).Dial") {
			out = append(out, g)
		}
	}
	return out
}

// TestDialConnectTimeout: a port that accepts the TCP connection but never
// speaks SSH (a hung sshd, another service waiting for its client to speak
// first). Dial must give up after DEPLOY_CONNECT_TIMEOUT, say so, and
// leave nothing behind: neither the socket nor a goroutine.
func TestDialConnectTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c // and never write a byte
	}()
	h := loopbackHost(ln.Addr().(*net.TCPAddr).Port)
	r := newBareRunner(t, 300*time.Millisecond)

	done := make(chan error, 1)
	go func() {
		c, err := r.Dial(context.Background(), h)
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Dial to a silent port did not return within 10s; DEPLOY_CONNECT_TIMEOUT is 300ms")
	}
	if err == nil {
		t.Fatal("Dial to a port that never speaks SSH succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"deploy@" + h.Address(), "timed out after 300ms", "DEPLOY_CONNECT_TIMEOUT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	// The client's end is closed: past its version line, the server side
	// reads EOF.
	var server net.Conn
	select {
	case server = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener never accepted Dial's connection")
	}
	defer server.Close()
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(server); err != nil {
		t.Errorf("server side of the abandoned connection: read %q, then %v; want EOF (Dial closed its socket)", got, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g := dialGoroutines(); len(g) > 0; g = dialGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines of Dial still running after it returned:\n%s", strings.Join(g, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDialRefused: nothing listens on the port.
func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := loopbackHost(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	r := newBareRunner(t, 10*time.Second)
	c, err := r.Dial(context.Background(), h)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a closed port succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"connect " + h.Address(), "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "DEPLOY_CONNECT_TIMEOUT") {
		t.Errorf("error %q blames DEPLOY_CONNECT_TIMEOUT for a refused connection", err)
	}
}
