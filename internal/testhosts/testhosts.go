// Package testhosts brings up real SSH test hosts on loopback for end-to-end
// tests and demos of the deployer: one OpenSSH sshd per app host, each with
// its own freshly created Unix user and its own loopback address
// (127.X.Y.10, 127.X.Y.11, ... in a /24 of the Env's own), plus a git
// server (another sshd, 127.X.Y.2) that serves one bare repository
// read-only to a deploy key; with Options.Jump, the app hosts sit behind a
// jump host, unreachable otherwise. It also builds pure-Python wheels into
// a local folder so that pip installs work offline, and gives a small WSGI
// app that a restart command (Env.RestartCmd) serves on each host for
// health checks.
//
// Everything needs root (useradd, sshd). Start creates the hosts and Close
// removes them; New wraps both for tests and skips when the machine cannot
// run them.
package testhosts

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Options says what Start brings up.
type Options struct {
	// Hosts is the number of app hosts, at most 245.
	Hosts int
	// Dir is the base folder; Start makes a new folder inside it. Every
	// parent of it must be searchable by other users (o+x), because the host
	// users live under it. Empty means /tmp.
	Dir string
	// GitPort22 makes the git server listen on port 22 of its address
	// too, for scp-like URLs (git@ADDR:path), which name no port; KnownHosts
	// then also has the server's key for ADDR. Start fails with ErrPort22
	// when that port cannot be had, and New skips (or fails).
	GitPort22 bool
	// Jump puts the app hosts behind a jump host (Env.Jump): their sshd
	// listen in a Linux network namespace of their own, which nothing of
	// this machine's network reaches but the jump host's sshd, which runs
	// in it too and is reached through a relay on its address (a router's
	// port forwarding). So the hosts can be logged into through the jump
	// host only (as ssh -J does), while the hosts themselves still reach
	// the git server (relayed into the namespace) and the local wheels. The
	// hosts' own servers (RestartCmd's app) are only reachable inside the
	// namespace, so DEPLOY_HEALTH_URL cannot check them. HostsFile lists the
	// hosts as usual, without their jump host.
	Jump bool
}

// Env is a set of running test hosts. Its methods are safe for concurrent
// use.
type Env struct {
	// Dir holds everything; Close removes it.
	Dir string
	// AdminKey is the path of the private key (ed25519, OpenSSH format, no
	// passphrase) that logs into every app host but not the git server.
	AdminKey string
	// GitKey is the path of the read-only deploy key, the only key the git
	// server accepts.
	GitKey string
	// KnownHosts is the path of a known_hosts file with the host key of
	// every app host and of the git server.
	KnownHosts string
	// HostsFile is the path of a file with one "user@ADDR:PORT" line per
	// app host (Host.Name).
	HostsFile string
	// RepoURL is the ssh:// URL of the bare repository on the git server.
	RepoURL string
	// WheelDir is a world-readable folder of locally built wheels.
	WheelDir string
	// Hosts are the app hosts, in the order of HostsFile.
	Hosts []*Host
	// Git is the git server.
	Git *Host
	// Jump is the jump host with Options.Jump, else nil: it lets the admin
	// key in for TCP forwarding only, and its key is in KnownHosts.
	Jump *Host

	prefix  string
	subnet  subnet   // the /24 of every address of this Env
	lock    *os.File // holds subnet until Close
	gitEnv  []string // environment for the git commands run by Commit
	workDir string   // the work repository Commit commits in
	bareDir string   // the git server's bare repository

	gitRequests   string // the file the git server's forced command logs requests to
	gitPort22Line string // the git server's known_hosts line for port 22, when it listens there

	hostNetns *netns   // with Options.Jump: the namespace the app hosts (and the jump host) listen in
	relays    []*relay // with Options.Jump: into and out of hostNetns

	gitMu sync.Mutex // serialises Commit and Remove on workDir

	closeMu sync.Mutex
	closed  bool
}

// safePath matches the paths Start accepts for Dir: they end up unquoted in
// sshd_config, in a shell script and in an ssh:// URL.
var safePath = regexp.MustCompile(`^/[A-Za-z0-9/._-]*$`)

// Start creates the users, keys, sshd processes, the bare repository app.git
// on the git server and the wheels pdtestdep 1.0 and 2.0. It does not commit
// anything. ctx bounds the setup only: the sshd processes run until Close.
// On error, everything created so far is removed again.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	if o.Hosts < 0 || o.Hosts > maxHosts {
		return nil, fmt.Errorf("testhosts: number of hosts %d not in 0..%d", o.Hosts, maxHosts)
	}
	if err := Check(); err != nil {
		return nil, fmt.Errorf("testhosts: %w", err)
	}
	// sshd refuses to start without its privilege separation folder.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("testhosts: %w", err)
	}
	dir, err := makeDir(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("testhosts: %w", err)
	}
	prefix, err := newPrefix()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("testhosts: %w", err)
	}
	e := &Env{Dir: dir, prefix: prefix}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("testhosts: %w", err), e.Close())
		}
	}()
	if err := e.setup(ctx, o); err != nil {
		return nil, err
	}
	return e, nil
}

// setup does the work of Start once Dir and the prefix exist.
func (e *Env) setup(ctx context.Context, o Options) error {
	var err error
	if e.subnet, e.lock, err = reserveSubnet(); err != nil {
		return err
	}
	if err := e.makeLayout(); err != nil {
		return err
	}
	e.AdminKey = filepath.Join(e.Dir, "keys", "admin")
	e.GitKey = filepath.Join(e.Dir, "keys", "deploy")
	for _, k := range []string{e.AdminKey, e.GitKey} {
		if err := keygen(ctx, k, e.prefix+" "+filepath.Base(k)); err != nil {
			return err
		}
	}
	if err := e.startGit(ctx, o.GitPort22); err != nil {
		return err
	}
	if o.Jump {
		if err := e.startBehindJump(ctx); err != nil {
			return err
		}
	}
	for i := 1; i <= o.Hosts; i++ {
		addr := e.subnet.addr(firstHostByte + i - 1)
		if err := e.startAppHost(ctx, fmt.Sprintf("%sh%d", e.prefix, i), addr); err != nil {
			return err
		}
	}
	if err := e.writeHostFiles(); err != nil {
		return err
	}
	for _, v := range []string{"1.0", "2.0"} {
		files := map[string]string{"pdtestdep/__init__.py": fmt.Sprintf("VERSION = %q\n", v)}
		if _, err := e.BuildWheel("pdtestdep", v, files); err != nil {
			return err
		}
	}
	return nil
}

// makeDir creates the Env folder inside base and checks that the host users
// can reach it.
func makeDir(base string) (string, error) {
	if base == "" {
		base = "/tmp"
	}
	base, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("base dir: %w", err)
	}
	for p := base; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("base dir: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return "", fmt.Errorf("base dir: %s is not searchable by other users (mode %v); the host users live below it", p, fi.Mode().Perm())
		}
		if p == "/" {
			break
		}
	}
	dir, err := os.MkdirTemp(base, "testhosts-")
	if err != nil {
		return "", fmt.Errorf("base dir: %w", err)
	}
	if !safePath.MatchString(dir) {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("base dir: %q has characters other than letters, digits and /._-", dir)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("base dir: %w", err)
	}
	return dir, nil
}

// makeLayout creates the fixed sub-folders of Dir. Folders the host users
// must read are 0755; the rest are root's alone.
func (e *Env) makeLayout() error {
	e.WheelDir = filepath.Join(e.Dir, "wheels")
	dirs := []struct {
		name string
		mode os.FileMode
	}{
		{"home", 0o755}, {"authorized_keys", 0o755}, {"bin", 0o755}, {"wheels", 0o755},
		{"keys", 0o700}, {"sshd", 0o700}, {"logs", 0o700}, {"gitconfig", 0o700}, {"work", 0o700},
	}
	for _, d := range dirs {
		p := filepath.Join(e.Dir, d.name)
		if err := os.Mkdir(p, d.mode); err != nil {
			return fmt.Errorf("layout: %w", err)
		}
		// Mkdir is subject to the umask; the modes above are the point.
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("layout: %w", err)
		}
	}
	return nil
}

// writeHostFiles writes KnownHosts and HostsFile.
func (e *Env) writeHostFiles() error {
	var known, hosts strings.Builder
	for _, h := range e.Hosts {
		known.WriteString(h.HostKeyLine + "\n")
		hosts.WriteString(h.Name + "\n")
	}
	known.WriteString(e.Git.HostKeyLine + "\n")
	if e.Jump != nil {
		known.WriteString(e.Jump.HostKeyLine + "\n")
	}
	if e.gitPort22Line != "" {
		known.WriteString(e.gitPort22Line + "\n")
	}
	e.KnownHosts = filepath.Join(e.Dir, "known_hosts")
	e.HostsFile = filepath.Join(e.Dir, "hosts")
	if err := os.WriteFile(e.KnownHosts, []byte(known.String()), 0o644); err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	if err := os.WriteFile(e.HostsFile, []byte(hosts.String()), 0o644); err != nil {
		return fmt.Errorf("hosts file: %w", err)
	}
	return nil
}

// Close stops every sshd this Env started and every process of its users
// (app servers included), deletes the users, removes Dir and frees the
// Env's addresses. Calling it again does nothing.
func (e *Env) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	for _, r := range e.relays {
		if err := r.close(); err != nil {
			errs = append(errs, err)
		}
	}
	all := e.Hosts
	for _, h := range []*Host{e.Jump, e.Git} {
		if h != nil {
			all = append(all[:len(all):len(all)], h)
		}
	}
	for _, h := range all {
		if err := h.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range all {
		if err := deleteUser(h); err != nil {
			errs = append(errs, err)
		}
	}
	if e.hostNetns != nil {
		if err := e.hostNetns.close(); err != nil {
			errs = append(errs, fmt.Errorf("network namespace: %w", err))
		}
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove dir: %w", err))
	}
	if e.lock != nil {
		if err := e.lock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("free addresses: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("testhosts: close: %w", err)
	}
	return nil
}

// newPrefix returns "pd" and 6 random lower-case letters or digits: the
// unique part of every user name of one Env.
func newPrefix() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random prefix: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "pd" + string(b), nil
}
