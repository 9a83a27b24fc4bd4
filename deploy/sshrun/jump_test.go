package sshrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/sshkeys"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// behind is h reached through hops.
func behind(h *testhosts.Host, hops ...*testhosts.Host) deploy.Host {
	d := hostOf(h)
	for _, hop := range hops {
		d.Jump = append(d.Jump, hostOf(hop))
	}
	return d
}

// poolSize is how many jump connections r holds.
func poolSize(r *Runner) int {
	r.jumps.mu.Lock()
	defer r.jumps.mu.Unlock()
	return len(r.jumps.open)
}

// waitLog waits until the jump host's log holds more than n lines
// containing s.
func waitLog(t *testing.T, env *testhosts.Env, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(env.JumpLog(), s) <= n {
		if time.Now().After(deadline) {
			t.Fatalf("the jump host's log has no more than %d lines with %q after 10s:\n%s", n, s, env.JumpLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJump dials hosts that listen where the deployer cannot reach them
// (testhosts Options.Jump: a network namespace of their own), through the
// jump host, whose sshd logs each forwarded connection.
func TestJump(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 2, Jump: true})
	jump := env.Jump
	accepted := "Accepted publickey for " + jump.User + " "
	disconnected := "Closing connection to "

	t.Run("direct login fails", func(t *testing.T) {
		r := newRunner(t, env, nil)
		c, err := r.Dial(t.Context(), hostOf(env.Hosts[0]))
		if err == nil {
			c.Close()
			t.Fatal("Dial without the jump host succeeded; the test hosts are reachable directly")
		}
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("Dial without the jump host: %v, want connection refused", err)
		}
	})

	t.Run("through the jump host, one connection for both hosts", func(t *testing.T) {
		r := newRunner(t, env, nil)
		logins := strings.Count(env.JumpLog(), accepted)
		gone := strings.Count(env.JumpLog(), disconnected)
		conns := make([]deploy.Conn, len(env.Hosts))
		errs := make([]error, len(env.Hosts))
		var wg sync.WaitGroup
		for i, h := range env.Hosts {
			wg.Go(func() { conns[i], errs[i] = r.Dial(t.Context(), behind(h, jump)) })
		}
		wg.Wait()
		for i, h := range env.Hosts {
			if errs[i] != nil {
				t.Fatalf("Dial %s through the jump host: %v\njump host log:\n%s", h.Name, errs[i], env.JumpLog())
			}
			stdout, _, err := run(t, conns[i], deploy.Command{Args: []string{"id", "-un"}})
			if err != nil || strings.TrimSpace(stdout) != h.User {
				t.Errorf("%s: id -un = %q, %v; want %s", h.Name, stdout, err, h.User)
			}
			target := fmt.Sprintf("target %s port %d", h.Addr, h.Port)
			if !strings.Contains(env.JumpLog(), target) {
				t.Errorf("the jump host's log shows no forwarded connection to %s (%q)", h.Name, target)
			}
		}
		if got := strings.Count(env.JumpLog(), accepted) - logins; got != 1 {
			t.Errorf("the jump host was logged into %d times for 2 hosts, want once (one shared connection)", got)
		}
		conns[0].Close()
		if got := poolSize(r); got != 1 {
			t.Errorf("with one host still connected: %d jump connections, want 1", got)
		}
		if _, _, err := run(t, conns[1], deploy.Command{Args: []string{"true"}}); err != nil {
			t.Errorf("the second host after the first was closed: %v", err)
		}
		conns[1].Close()
		if got := poolSize(r); got != 0 {
			t.Errorf("with no host connected: %d jump connections, want 0", got)
		}
		waitLog(t, env, disconnected, gone) // the jump host saw it close
	})

	t.Run("unknown jump host key", func(t *testing.T) {
		known := strings.ReplaceAll(string(readFile(t, env.KnownHosts)), jump.HostKeyLine+"\n", "")
		path := t.TempDir() + "/known_hosts"
		writeFile(t, path, known)
		r := newRunner(t, env, func(c *Config) { c.KnownHosts = path })
		forwarded := strings.Count(env.JumpLog(), "server_request_direct_tcpip")
		c, err := r.Dial(t.Context(), behind(env.Hosts[0], jump))
		if err == nil {
			c.Close()
			t.Fatal("Dial through a jump host whose key is unknown succeeded")
		}
		var hk *sshkeys.HostKeyError
		var je *JumpError
		if !errors.As(err, &hk) || !errors.As(err, &je) {
			t.Fatalf("got %v (%T), want a *JumpError with a *sshkeys.HostKeyError", err, err)
		}
		fp := ssh.FingerprintSHA256(hostKey(t, jump.HostKeyLine))
		jumpAt := fmt.Sprintf("[%s]:%d", jump.Addr, jump.Port)
		if hk.Problem != sshkeys.Unknown || hk.Host != jumpAt || hk.Fingerprint != fp {
			t.Errorf("host key error: %+v, want Unknown for %s with %s", hk, jumpAt, fp)
		}
		want := fmt.Sprintf("jump host: ssh login %s@%s:%d: host key of %s is unknown: it presents ssh-ed25519 %s, which is not in %s", jump.User, jump.Addr, jump.Port, jumpAt, fp, path)
		if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), fmt.Sprintf("ssh-keyscan -p %d %s", jump.Port, jump.Addr)) {
			t.Errorf("got error\n%v\nwant it to start with\n%s\nand name the ssh-keyscan command", err, want)
		}
		if got := strings.Count(env.JumpLog(), "server_request_direct_tcpip"); got != forwarded {
			t.Errorf("the jump host forwarded %d connections for a refused key, want none", got-forwarded)
		}
		if got := poolSize(r); got != 0 {
			t.Errorf("%d jump connections kept after a failed dial, want 0", got)
		}
	})

	t.Run("unknown host key behind the jump host", func(t *testing.T) {
		// What a jump host that sends the connection somewhere else looks
		// like: the host's own key is checked end to end.
		h := env.Hosts[0]
		known := strings.ReplaceAll(string(readFile(t, env.KnownHosts)), h.HostKeyLine+"\n", "")
		path := t.TempDir() + "/known_hosts"
		writeFile(t, path, known)
		r := newRunner(t, env, func(c *Config) { c.KnownHosts = path })
		c, err := r.Dial(t.Context(), behind(h, jump))
		if err == nil {
			c.Close()
			t.Fatal("Dial to a host whose key is unknown succeeded through the jump host")
		}
		var hk *sshkeys.HostKeyError
		var je *JumpError
		if !errors.As(err, &hk) || errors.As(err, &je) || hk.Host != fmt.Sprintf("[%s]:%d", h.Addr, h.Port) {
			t.Fatalf("got %v, want the host's own *sshkeys.HostKeyError, not the jump host's", err)
		}
		if got := poolSize(r); got != 0 {
			t.Errorf("%d jump connections kept after the only host failed, want 0", got)
		}
	})

	t.Run("two hops", func(t *testing.T) {
		// The jump host again, through itself: its sshd listens in the
		// hosts' namespace too.
		r := newRunner(t, env, nil)
		c, err := r.Dial(t.Context(), behind(env.Hosts[1], jump, jump))
		if err != nil {
			t.Fatalf("Dial through two hops: %v\njump host log:\n%s", err, env.JumpLog())
		}
		defer c.Close()
		if stdout, _, err := run(t, c, deploy.Command{Args: []string{"id", "-un"}}); err != nil || strings.TrimSpace(stdout) != env.Hosts[1].User {
			t.Errorf("id -un = %q, %v", stdout, err)
		}
		if target := fmt.Sprintf("target %s port %d", jump.Addr, jump.Port); !strings.Contains(env.JumpLog(), target) {
			t.Errorf("the jump host's log shows no connection forwarded to itself (%q)", target)
		}
		if got := poolSize(r); got != 2 {
			t.Errorf("%d jump connections open, want 2 (one a hop)", got)
		}
	})

	t.Run("host down behind the jump host", func(t *testing.T) {
		h := env.Hosts[1]
		if err := h.Stop(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := h.Restart(context.Background()); err != nil {
				t.Error(err)
			}
		}()
		r := newRunner(t, env, nil)
		c, err := r.Dial(t.Context(), behind(h, jump))
		if err == nil {
			c.Close()
			t.Fatal("Dial to a stopped host succeeded")
		}
		var je *JumpError
		if errors.As(err, &je) {
			t.Errorf("a host that is down is reported as the jump host's failure: %v", err)
		}
		want := fmt.Sprintf("connect %s:%d through %s@%s:%d: the jump host %s@%s:%d cannot connect to it: Connection refused",
			h.Addr, h.Port, jump.User, jump.Addr, jump.Port, jump.User, jump.Addr, jump.Port)
		if err.Error() != want {
			t.Errorf("got error\n%v\nwant\n%s", err, want)
		}
	})

	t.Run("silent host behind the jump host", func(t *testing.T) {
		ln, err := env.ListenBehindJump()
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		held := make(chan net.Conn, 4)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				// Once the client's version line has arrived, it is in
				// the handshake, waiting for the server's: never sent.
				go func() {
					buf := make([]byte, 8)
					if _, err := io.ReadFull(c, buf); err == nil && string(buf) == "SSH-2.0-" {
						held <- c
					}
				}()
			}
		}()
		// drain closes the connections the silent host holds, so that the
		// next part waits for its own.
		drain := func() {
			for len(held) > 0 {
				(<-held).Close()
			}
		}
		defer drain()
		tcp := ln.Addr().(*net.TCPAddr)
		silent := deploy.Host{Name: "silent", User: "deploy", Addr: tcp.IP.String(), Port: tcp.Port, Jump: []deploy.Host{hostOf(jump)}}

		r := newRunner(t, env, func(c *Config) { c.ConnectTimeout = 2 * time.Second })
		start := time.Now()
		_, err = r.Dial(t.Context(), silent)
		took := time.Since(start)
		var te *connectTimeoutError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "timed out after 2s (DEPLOY_CONNECT_TIMEOUT)") {
			t.Errorf("Dial to a silent host through the jump host: %v, want the connect timeout", err)
		}
		if took > 4*time.Second {
			t.Errorf("Dial took %v, want about the 2s connect timeout", took)
		}
		drain()

		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-held // the handshake waits for the silent host
			cancel()
		}()
		start = time.Now()
		_, err = r.Dial(ctx, silent)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial cancelled during the handshake: %v, want context.Canceled", err)
		}
		if took := time.Since(start); took > time.Second+500*time.Millisecond {
			t.Errorf("cancelled Dial took %v, want it to return at once", took)
		}
		drain()

		// A jump host that hangs once it has connected (its sshd frozen):
		// closing the tunnel is never answered, and Dial must still return
		// when ctx ends rather than wait for the jump host.
		ctx, cancel = context.WithCancel(t.Context())
		defer cancel()
		var frozen []int
		defer func() {
			for _, pid := range frozen {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		}()
		go func() {
			<-held
			frozen = freeze(t, jump.User)
			cancel()
		}()
		start = time.Now()
		_, err = r.Dial(ctx, silent)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial cancelled while the jump host hangs: %v, want context.Canceled", err)
		}
		if took := time.Since(start); took > time.Second+500*time.Millisecond {
			t.Errorf("Dial cancelled while the jump host hangs took %v, want it to return at once", took)
		}
		for _, pid := range frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
		frozen = nil

		deadline := time.Now().Add(5 * time.Second)
		for poolSize(r) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the jump connection is still open 5s after the last dial through it failed")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// freeze stops (SIGSTOP) every process of user and returns their ids.
func freeze(t *testing.T, user string) []int {
	out, err := exec.Command("pgrep", "-u", user).Output()
	if err != nil {
		t.Errorf("pgrep -u %s: %v", user, err)
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err == nil && syscall.Kill(pid, syscall.SIGSTOP) == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestJumpRefusesForwarding: a jump host whose sshd does not forward (the
// test hosts have AllowTcpForwarding no) gives an error that says so.
func TestJumpRefusesForwarding(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 2})
	r := newRunner(t, env, nil)
	gw := env.Hosts[0]
	c, err := r.Dial(t.Context(), behind(env.Hosts[1], gw))
	if err == nil {
		c.Close()
		t.Fatal("Dial through a jump host that does not forward succeeded")
	}
	want := fmt.Sprintf("the jump host %s@%s:%d refuses to forward connections", gw.User, gw.Addr, gw.Port)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "AllowTcpForwarding") {
		t.Errorf("got error\n%v\nwant it to contain %q and name AllowTcpForwarding", err, want)
	}
}
