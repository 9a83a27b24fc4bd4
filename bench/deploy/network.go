package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// network puts a delayProxy in front of every app host's sshd and the git
// server of one Env, on the same loopback addresses (other ports), and
// writes the hosts file, known_hosts and repository URL that go through
// them. Both tools get those, and the hosts clone from that URL, so every
// SSH connection (deployer to host, host to git server, deployer to git
// server) pays the delay each way. The known_hosts has the proxies'
// addresses only: a connection that went around a proxy would fail its
// host key check.
type network struct {
	delay      time.Duration
	hosts      []*delayProxy // in the order of env.Hosts
	git        *delayProxy
	hostsFile  string
	knownHosts string
	repoURL    string
}

// proxyNetwork starts the proxies for env. For the script, each host's own
// ~/.ssh/known_hosts (which its git clone checks the git server against)
// is rewritten for the proxy's address; pushdeploy's hosts have none and
// get the git server's key from the deployer.
func proxyNetwork(ctx context.Context, env *testhosts.Env, delay time.Duration, tool string) (_ *network, err error) {
	nw := &network{delay: delay}
	defer func() {
		if err != nil {
			nw.Close()
		}
	}()
	var hosts, known strings.Builder
	keyOf := func(h *testhosts.Host) string { return strings.SplitN(h.HostKeyLine, " ", 2)[1] }
	for _, h := range env.Hosts {
		p, err := startProxy(ctx, h.Addr, net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)), delay)
		if err != nil {
			return nil, err
		}
		nw.hosts = append(nw.hosts, p)
		fmt.Fprintf(&hosts, "%s@%s:%d\n", h.User, h.Addr, p.Port())
		fmt.Fprintf(&known, "[%s]:%d %s\n", h.Addr, p.Port(), keyOf(h))
	}
	g := env.Git
	if nw.git, err = startProxy(ctx, g.Addr, net.JoinHostPort(g.Addr, strconv.Itoa(g.Port)), delay); err != nil {
		return nil, err
	}
	gitLine := fmt.Sprintf("[%s]:%d %s\n", g.Addr, nw.git.Port(), keyOf(g))
	known.WriteString(gitLine)
	u, err := url.Parse(env.RepoURL)
	if err != nil {
		return nil, fmt.Errorf("repository URL: %w", err)
	}
	u.Host = net.JoinHostPort(g.Addr, strconv.Itoa(nw.git.Port()))
	nw.repoURL = u.String()
	nw.hostsFile = filepath.Join(env.Dir, "hosts-through-proxies")
	nw.knownHosts = filepath.Join(env.Dir, "known_hosts-through-proxies")
	if err := os.WriteFile(nw.hostsFile, []byte(hosts.String()), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(nw.knownHosts, []byte(known.String()), 0o644); err != nil {
		return nil, err
	}
	if tool == toolOriginal {
		for _, h := range env.Hosts {
			// WriteFile keeps the file's owner, the host user.
			if err := os.WriteFile(h.Path(".ssh/known_hosts"), []byte(gitLine), 0o644); err != nil {
				return nil, fmt.Errorf("host %s: %w", h.User, err)
			}
		}
	}
	return nw, nil
}

// Close stops every proxy.
func (nw *network) Close() {
	for _, p := range append(slices.Clone(nw.hosts), nw.git) {
		if p != nil {
			if err := p.Close(); err != nil {
				note("close proxy: %v", err)
			}
		}
	}
}

// trips is what one operation did over SSH, counted.
type trips struct {
	// logins and commands are, per app host (in env order), the SSH
	// logins to it and the remote commands (session channels that ran a
	// command) started on it, from its sshd's log.
	logins, commands []int
	// gitLogins is, per app host, its own logins to the git server; the
	// git proxy tells them apart by the Unix user owning the client's
	// socket (one user per host).
	gitLogins []int
	// deployerGit is the deployer's own logins to the git server, and
	// otherGit those of no known user (none expected).
	deployerGit, otherGit int
}

// tally is the counters at one moment.
type tally struct {
	logins, commands []int
	git              map[int]int
}

// sshd's VERBOSE log lines for a login and for a session that runs a
// command (or a shell, or a subsystem: every one a remote command).
const (
	logLogin   = "Accepted publickey for "
	logSession = "Starting session: "
)

func (nw *network) tally(env *testhosts.Env) tally {
	t := tally{git: nw.git.ConnsByUID()}
	for _, h := range env.Hosts {
		log := h.Log()
		t.logins = append(t.logins, strings.Count(log, logLogin))
		t.commands = append(t.commands, strings.Count(log, logSession))
	}
	return t
}

// since is what happened between before and now.
func (nw *network) since(env *testhosts.Env, before tally) trips {
	now := nw.tally(env)
	var tr trips
	git := now.git
	for i := range env.Hosts {
		tr.logins = append(tr.logins, now.logins[i]-before.logins[i])
		tr.commands = append(tr.commands, now.commands[i]-before.commands[i])
		uid, _ := env.Hosts[i].IDs()
		tr.gitLogins = append(tr.gitLogins, git[uid]-before.git[uid])
		delete(git, uid)
	}
	me := os.Getuid()
	tr.deployerGit = git[me] - before.git[me]
	delete(git, me)
	for uid, n := range git {
		tr.otherGit += n - before.git[uid]
	}
	return tr
}

// ---- the self-check: does the proxy add what it says ----

// selfCheck is what one delay measured.
type selfCheck struct {
	delay time.Duration
	// echoFirst is the first round trip of one byte through the proxy to
	// a TCP echo server on a new connection (it pays the connection's
	// setup), echoMedian and echoMin those of the 20 after it.
	echoFirst, echoMedian, echoMin time.Duration
	// login: median of 3 OpenSSH logins (ssh host true) through the proxy.
	login time.Duration
	// mbps: 8 MiB sent through the proxy, in MB/s from the first byte
	// sent to the receiver's answer.
	mbps float64
}

// proxySelfCheck measures each delay: an echo round trip must take at
// least twice the delay, and the first on a new connection twice that. It
// also returns the OpenSSH login time without a proxy.
func proxySelfCheck(ctx context.Context, delays []time.Duration) ([]selfCheck, time.Duration, error) {
	env, err := testhosts.Start(ctx, testhosts.Options{Hosts: 1})
	if err != nil {
		return nil, 0, err
	}
	defer closeEnv(env)
	h := env.Hosts[0]
	direct, err := medianOf(3, func() error { return env.SSH(ctx, h, "true").Run() })
	if err != nil {
		return nil, 0, fmt.Errorf("ssh login without a proxy: %w", err)
	}
	var out []selfCheck
	for _, d := range delays {
		c, err := checkDelay(ctx, env, d)
		if err != nil {
			return nil, 0, fmt.Errorf("delay %v: %w", d, err)
		}
		if c.echoMin < 2*d || c.echoFirst < 4*d {
			return nil, 0, fmt.Errorf("delay %v: round trips through the proxy took %v (the least) and %v (a new connection's first), less than 2 and 4 times the delay", d, c.echoMin, c.echoFirst)
		}
		out = append(out, c)
	}
	return out, direct, nil
}

func checkDelay(ctx context.Context, env *testhosts.Env, d time.Duration) (selfCheck, error) {
	c := selfCheck{delay: d}
	var err error
	if c.echoFirst, c.echoMedian, c.echoMin, err = echoRoundTrips(ctx, d, 20); err != nil {
		return c, fmt.Errorf("echo: %w", err)
	}
	if c.mbps, err = throughput(ctx, d, 8<<20); err != nil {
		return c, fmt.Errorf("throughput: %w", err)
	}
	h := env.Hosts[0]
	p, err := startProxy(ctx, h.Addr, net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)), d)
	if err != nil {
		return c, err
	}
	defer p.Close()
	known := filepath.Join(env.Dir, "known_hosts-self-check")
	line := fmt.Sprintf("[%s]:%d %s\n", h.Addr, p.Port(), strings.SplitN(h.HostKeyLine, " ", 2)[1])
	if err := os.WriteFile(known, []byte(line), 0o644); err != nil {
		return c, err
	}
	c.login, err = medianOf(3, func() error {
		cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-i", env.AdminKey,
			"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
			"-o", "UserKnownHostsFile="+known, "-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
			"-p", strconv.Itoa(p.Port()), h.User+"@"+h.Addr, "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("ssh login through the proxy: %w", err)
	}
	return c, nil
}

// medianOf runs f n times and returns the median of its durations.
func medianOf(n int, f func() error) (time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

// localServer serves one connection on a fresh listener on 127.0.0.1 with
// handle, behind a proxy with delay d, and returns a connection to the
// proxy, and a func that closes everything.
func localServer(ctx context.Context, d time.Duration, handle func(net.Conn)) (net.Conn, func(), error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		handle(c)
	}()
	p, err := startProxy(ctx, "127.0.0.1", ln.Addr().String(), d)
	if err != nil {
		ln.Close()
		<-served
		return nil, nil, err
	}
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", p.Addr())
	if err == nil {
		err = c.SetDeadline(time.Now().Add(time.Minute))
	}
	stop := func() {
		if c != nil {
			c.Close()
		}
		p.Close()
		ln.Close()
		<-served
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return c, stop, nil
}

// echoRoundTrips sends one byte at a time to an echo server through a
// proxy with delay d, on a new connection, n+1 times; it returns the
// first round trip (the connect on loopback is instant, so the first
// pays the connection's setup) and the median and least of the others.
func echoRoundTrips(ctx context.Context, d time.Duration, n int) (first, median, least time.Duration, err error) {
	start := time.Now()
	c, stop, err := localServer(ctx, d, func(c net.Conn) { _, _ = io.Copy(c, c) })
	if err != nil {
		return 0, 0, 0, err
	}
	defer stop()
	var rtts []time.Duration
	b := make([]byte, 1)
	for i := 0; i <= n; i++ {
		if i > 0 {
			start = time.Now()
		}
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			return 0, 0, 0, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return 0, 0, 0, err
		}
		if b[0] != byte(i) {
			return 0, 0, 0, errors.New("the echo came back different")
		}
		rtts = append(rtts, time.Since(start))
	}
	first, rtts = rtts[0], rtts[1:]
	slices.Sort(rtts)
	return first, rtts[n/2], rtts[0], nil
}

func throughput(ctx context.Context, d time.Duration, size int64) (float64, error) {
	c, stop, err := localServer(ctx, d, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		_, _ = fmt.Fprintf(c, "%d\n", n)
	})
	if err != nil {
		return 0, err
	}
	defer stop()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := c.Write(data); err != nil {
		return 0, err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	answer, err := io.ReadAll(c)
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	if !bytes.Equal(bytes.TrimSpace(answer), []byte(strconv.FormatInt(size, 10))) {
		return 0, fmt.Errorf("the receiver got %q bytes, want %d", answer, size)
	}
	return float64(size) / 1e6 / took.Seconds(), nil
}
