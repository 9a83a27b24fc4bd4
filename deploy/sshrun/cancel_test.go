package sshrun

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// startedWriter closes C on the first write: the command has started.
type startedWriter struct {
	once sync.Once
	C    chan struct{}
}

func newStartedWriter() *startedWriter { return &startedWriter{C: make(chan struct{})} }

func (w *startedWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.C) })
	return len(p), nil
}

// remoteRunning reports whether user runs a process whose command line is
// exactly cmdline. The test hosts live on this machine, so pgrep sees them.
func remoteRunning(t *testing.T, user, cmdline string) bool {
	t.Helper()
	err := exec.Command("pgrep", "-u", user, "-x", "-f", cmdline).Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false
	}
	if err != nil {
		t.Fatalf("pgrep: %v", err)
	}
	return true
}

// waitGone waits until user no longer runs cmdline.
func waitGone(t *testing.T, user, cmdline string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for remoteRunning(t, user, cmdline) {
		if time.Now().After(deadline) {
			t.Errorf("%q still runs on the host %v after Run returned", cmdline, within)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runAsync runs cmd on c and reports its error and duration on the
// returned channel, once the command has written its first output.
type result struct {
	err error
	d   time.Duration
}

func runAsync(t *testing.T, ctx context.Context, c deploy.Conn, cmd deploy.Command) <-chan result {
	t.Helper()
	started := newStartedWriter()
	cmd.Stdout = started
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		err := c.Run(ctx, cmd)
		done <- result{err, time.Since(start)}
	}()
	select {
	case <-started.C:
	case r := <-done:
		t.Fatalf("Run ended before the command started: %v", r.err)
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not start within 20s")
	}
	return done
}

// await waits for the result of runAsync, failing when it takes longer
// than within.
func await(t *testing.T, done <-chan result, within time.Duration) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(within):
		t.Fatalf("Run did not return within %v", within)
		return result{}
	}
}

func TestRunContextCancel(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	c := dial(t, newRunner(t, env, nil), h)

	// An unusual duration, so that pgrep finds this sleep and no other.
	const sleep = "sleep 29.123"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(t, ctx, c, deploy.Command{Args: []string{"sh", "-c", "echo started; exec " + sleep}})
	if !remoteRunning(t, h.User, sleep) {
		t.Fatalf("%q does not run on the host", sleep)
	}
	time.AfterFunc(300*time.Millisecond, cancel)
	r := await(t, done, 5*time.Second)
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("Run: got %v, want context.Canceled", r.err)
	}
	// SIGTERM reaches the remote command.
	waitGone(t, h.User, sleep, 5*time.Second)

	// The connection outlives one cancelled command.
	if _, _, err := run(t, c, deploy.Command{Args: []string{"true"}}); err != nil {
		t.Errorf("Run after a cancelled Run: %v", err)
	}
}

func TestRunContextDeadline(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	c := dial(t, newRunner(t, env, nil), env.Hosts[0])
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Run(ctx, deploy.Command{Args: []string{"sleep", "30"}})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v after a 300ms deadline", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run: got %v, want context.DeadlineExceeded", err)
	}
}

// TestRunCommandTimeout checks that Command.Timeout is enforced on the host
// itself by coreutils timeout.
func TestRunCommandTimeout(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	c := dial(t, newRunner(t, env, nil), env.Hosts[0])
	start := time.Now()
	_, _, err := run(t, c, deploy.Command{Args: []string{"sleep", "30"}, Timeout: time.Second})
	d := time.Since(start)
	checkExit(t, err, 124, "exit status 124")
	if d < 900*time.Millisecond || d > 10*time.Second {
		t.Errorf("Run took %v, want about 1s", d)
	}
}

// TestRunHostStopped: the host's sshd dies with the command running.
func TestRunHostStopped(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	c := dial(t, newRunner(t, env, func(c *Config) { c.KeepAlive = 500 * time.Millisecond }), h)
	done := runAsync(t, context.Background(), c, deploy.Command{Args: []string{"sh", "-c", "echo started; exec sleep 30"}})
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	r := await(t, done, 10*time.Second)
	if r.err == nil {
		t.Fatal("Run: got success, want an error")
	}
	var ee *deploy.ExitError
	if errors.As(r.err, &ee) {
		t.Errorf("Run: got %v, an exit status; want a lost connection", r.err)
	}
	if !strings.Contains(r.err.Error(), "connection lost") {
		t.Errorf("Run: got %q, want it to say the connection was lost", r.err)
	}
	if _, _, err := run(t, c, deploy.Command{Args: []string{"true"}}); err == nil {
		t.Error("Run on the dead connection: got success, want an error")
	}
}

// blackhole is a TCP proxy to an sshd that, once silenced, swallows every
// byte in both directions without closing anything: a host that froze or
// a network that dropped off, which only keepalives notice.
type blackhole struct {
	ln     net.Listener
	silent atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newBlackhole(t *testing.T, upstream string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln}
	t.Cleanup(b.close)
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				down.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, down, up)
			b.mu.Unlock()
			go b.pipe(up, down)
			go b.pipe(down, up)
		}
	}()
	return b
}

func (b *blackhole) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *blackhole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if !b.silent.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

func (b *blackhole) close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
}

// TestRunHostSilent: the host stops answering but the TCP connection stays
// up. The keepalives must notice and end the command.
func TestRunHostSilent(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	proxy := newBlackhole(t, hostOf(h).Address())
	// known_hosts vouching for the host's key at the proxy's port.
	known := filepath.Join(t.TempDir(), "known_hosts")
	key := strings.SplitN(h.HostKeyLine, " ", 2)[1]
	writeFile(t, known, "[127.0.0.1]:"+strconv.Itoa(proxy.port())+" "+key+"\n")
	r := newRunner(t, env, func(c *Config) {
		c.KnownHosts = known
		c.KeepAlive = 500 * time.Millisecond
	})
	hp := hostOf(h)
	hp.Addr, hp.Port = "127.0.0.1", proxy.port()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := r.Dial(ctx, hp)
	if err != nil {
		t.Fatalf("Dial through the proxy: %v", err)
	}
	defer c.Close()
	// Longer than a few keepalive periods: the connection must survive
	// while the host answers.
	if _, _, err := run(t, c, deploy.Command{Args: []string{"sleep", "2"}}); err != nil {
		t.Fatalf("Run while the host answers: %v", err)
	}

	done := runAsync(t, context.Background(), c, deploy.Command{Args: []string{"sh", "-c", "echo started; exec sleep 30"}})
	proxy.silent.Store(true)
	// Three missed keepalives of 500ms each, with slack.
	r2 := await(t, done, 10*time.Second)
	if r2.err == nil {
		t.Fatal("Run: got success, want an error")
	}
	if !strings.Contains(r2.err.Error(), "connection lost") {
		t.Errorf("Run: got %q, want it to say the connection was lost", r2.err)
	}
	if r2.d > 10*time.Second {
		t.Errorf("Run took %v", r2.d)
	}
}
