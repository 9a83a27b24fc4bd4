package testhosts

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sshdPath is the OpenSSH server. It must be absolute: sshd re-executes
// itself for every connection.
const sshdPath = "/usr/sbin/sshd"

// readyTimeout bounds how long one sshd may take to answer.
const readyTimeout = 10 * time.Second

// errAddrInUse means sshd lost the race for its port.
var errAddrInUse = errors.New("address already in use")

// Host is one sshd on a loopback address of its own that lets exactly one
// user in. Its methods are safe for concurrent use.
type Host struct {
	// Name is the host's line in HostsFile: "user@ADDR:PORT".
	Name string
	// User is the only user this sshd accepts.
	User string
	// Addr is the host's own IPv4 address in 127.0.0.0/8, such as
	// "127.83.7.10"; sshd listens on it only.
	Addr string
	// Port is the port sshd listens on, on Addr.
	Port int
	// Home is the user's home folder.
	Home string
	// HostKeyLine is the host's known_hosts line:
	// "[ADDR]:PORT ssh-ed25519 AAAA...".
	HostKeyLine string

	uid, gid int
	created  bool   // the user exists, so Close must delete it
	config   string // sshd_config path
	logPath  string // sshd's stderr
	settings string // sshd_config without Port
	netns    *netns // the network namespace sshd listens in; nil: this process's

	mu   sync.Mutex
	cmd  *exec.Cmd     // the running sshd, nil when stopped
	done chan struct{} // closed once cmd has been waited for
}

// IDs returns the host user's uid and gid, for running a command as that
// user on this machine, as its sshd would.
func (h *Host) IDs() (uid, gid int) { return h.uid, h.gid }

// Path returns the local path of rel inside the host user's home, for
// example h.Path("app/current").
func (h *Host) Path(rel string) string {
	return filepath.Join(h.Home, rel)
}

// newHost creates the user and the sshd files of a host on addr and starts
// its sshd on a free port; authLine is the user's authorized_keys line,
// extra goes at the end of sshd_config. The host is added to list before
// anything can fail after useradd, so that Close deletes the user.
func (e *Env) newHost(ctx context.Context, name, addr, authLine, extra string, list func(*Host)) (*Host, error) {
	h, pub, err := e.prepareHost(ctx, name, addr, authLine, extra, list)
	if err != nil {
		return nil, err
	}
	if err := h.start(ctx, false); err != nil {
		return nil, err
	}
	h.started(pub)
	return h, nil
}

// prepareHost does newHost's work but for starting sshd; it returns the
// host and its public host key.
func (e *Env) prepareHost(ctx context.Context, name, addr, authLine, extra string, list func(*Host)) (*Host, string, error) {
	h := &Host{
		netns:   e.hostNetns,
		User:    name,
		Addr:    addr,
		Home:    filepath.Join(e.Dir, "home", name),
		config:  filepath.Join(e.Dir, "sshd", name+".conf"),
		logPath: filepath.Join(e.Dir, "logs", name+".sshd.log"),
	}
	list(h)
	if err := createUser(ctx, h); err != nil {
		return nil, "", err
	}
	ak := filepath.Join(e.Dir, "authorized_keys", name)
	if err := os.WriteFile(ak, []byte(authLine+"\n"), 0o644); err != nil {
		return nil, "", fmt.Errorf("host %s: authorized_keys: %w", name, err)
	}
	hostKey := filepath.Join(e.Dir, "sshd", name+"_host_ed25519_key")
	if err := keygen(ctx, hostKey, name+" host key"); err != nil {
		return nil, "", fmt.Errorf("host %s: %w", name, err)
	}
	pub, err := publicKey(hostKey)
	if err != nil {
		return nil, "", fmt.Errorf("host %s: %w", name, err)
	}
	h.settings = strings.Join([]string{
		"ListenAddress " + addr,
		"HostKey " + hostKey,
		"PidFile none",
		"AuthorizedKeysFile " + filepath.Join(e.Dir, "authorized_keys", "%u"),
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"AllowUsers " + name,
		"AllowAgentForwarding yes",
		"AllowTcpForwarding no",
		"X11Forwarding no",
		"PermitRootLogin no",
		"MaxStartups 50",
		"MaxSessions 50",
		"LogLevel VERBOSE",
		"Subsystem sftp internal-sftp",
		extra,
	}, "\n")
	return h, pub, nil
}

// started sets the Name and HostKeyLine of a host whose sshd listens on
// h.Port; pub is its public host key.
func (h *Host) started(pub string) {
	h.Name = fmt.Sprintf("%s@%s:%d", h.User, h.Addr, h.Port)
	h.HostKeyLine = fmt.Sprintf("[%s]:%d %s", h.Addr, h.Port, pub)
}

// startAppHost adds an app host that accepts the admin key. Its user's
// ~/.ssh/known_hosts trusts the git server, so that a git clone on the host
// (with the deploy key lent through agent forwarding) checks the host key.
func (e *Env) startAppHost(ctx context.Context, name, addr string) error {
	admin, err := publicKey(e.AdminKey)
	if err != nil {
		return err
	}
	h, err := e.newHost(ctx, name, addr, admin, "", func(h *Host) { e.Hosts = append(e.Hosts, h) })
	if err != nil {
		return err
	}
	dotSSH := h.Path(".ssh")
	if err := os.Mkdir(dotSSH, 0o700); err != nil {
		return fmt.Errorf("host %s: %w", name, err)
	}
	known := filepath.Join(dotSSH, "known_hosts")
	lines := e.Git.HostKeyLine + "\n"
	if e.gitPort22Line != "" {
		lines += e.gitPort22Line + "\n"
	}
	if err := os.WriteFile(known, []byte(lines), 0o644); err != nil {
		return fmt.Errorf("host %s: %w", name, err)
	}
	for _, p := range []string{dotSSH, known} {
		if err := os.Chown(p, h.uid, h.gid); err != nil {
			return fmt.Errorf("host %s: %w", name, err)
		}
	}
	return nil
}

// start launches sshd. With samePort it must get h.Port back (Restart);
// otherwise it picks a free port and tries another when it loses the race
// for it.
func (h *Host) start(ctx context.Context, samePort bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		return nil
	}
	for attempt := 1; ; attempt++ {
		if !samePort {
			port, err := h.freePort(ctx)
			if err != nil {
				return fmt.Errorf("host %s: %w", h.User, err)
			}
			h.Port = port
		}
		err := h.launch(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == 10 {
			return fmt.Errorf("host %s: %w", h.User, err)
		}
		if samePort {
			// The port is someone else's now; it may be freed soon.
			select {
			case <-ctx.Done():
				return fmt.Errorf("host %s: %w", h.User, errors.Join(err, ctx.Err()))
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// freePort asks the kernel for a free port on h.Addr, in h's network
// namespace. Someone else may take it before sshd binds it; launch
// notices.
func (h *Host) freePort(ctx context.Context) (port int, err error) {
	err = h.inNet(func() error {
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(h.Addr, "0"))
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	return port, nil
}

// inNet runs fn in h's network namespace.
func (h *Host) inNet(fn func() error) error {
	if h.netns == nil {
		return fn()
	}
	return h.netns.do(fn)
}

// launch writes sshd_config for h.Port, starts sshd and waits until it
// answers. Called with h.mu held.
func (h *Host) launch(ctx context.Context) error {
	cfg := fmt.Sprintf("Port %d\n%s\n", h.Port, h.settings)
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("sshd_config: %w", err)
	}
	logf, err := os.OpenFile(h.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("sshd log: %w", err)
	}
	defer logf.Close() // sshd has its own copy of the descriptor
	offset, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("sshd log: %w", err)
	}
	// sshd lives until Stop or Close, not until ctx is done: ctx bounds
	// the start only.
	args := []string{sshdPath, "-D", "-e", "-f", h.config}
	if h.netns != nil {
		// nsenter enters the namespace and execs sshd (no fork), so
		// cmd.Process is sshd's listener as without it.
		args = append([]string{"nsenter", "--net=" + h.netns.path(), "--"}, args...)
	}
	cmd := exec.CommandContext(context.WithoutCancel(ctx), args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // how it ended is in its log
		close(done)
	}()
	h.cmd, h.done = cmd, done
	if err := h.waitReady(ctx, offset); err != nil {
		h.kill()
		return err
	}
	return nil
}

// waitReady waits until the sshd that logs from offset on says it listens
// on h.Addr port h.Port and the port answers with an SSH banner. The log line proves the
// banner is this sshd's and not that of another process that won the port.
func (h *Host) waitReady(ctx context.Context, offset int64) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	want := fmt.Sprintf("Server listening on %s port %d.", h.Addr, h.Port)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		log := h.logFrom(offset)
		if strings.Contains(log, want) {
			if err := h.inNet(func() error { return banner(ctx, h.Addr, h.Port) }); err != nil {
				return fmt.Errorf("sshd on port %d: %w; log:\n%s", h.Port, err, tail(log))
			}
			return nil
		}
		select {
		case <-h.done:
			log = h.logFrom(offset)
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("sshd on port %d: %w", h.Port, errAddrInUse)
			}
			return fmt.Errorf("sshd exited during start: %s; log:\n%s", h.cmd.ProcessState, tail(log))
		case <-ctx.Done():
			return fmt.Errorf("sshd on port %d did not start: %w; log:\n%s", h.Port, ctx.Err(), tail(log))
		case <-tick.C:
		}
	}
}

// banner checks that addr:port speaks SSH 2.
func banner(ctx context.Context, addr string, port int) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("read banner: not SSH 2: %q", line)
	}
	return nil
}

// logFrom returns sshd's log from offset on.
func (h *Host) logFrom(offset int64) string {
	b, err := os.ReadFile(h.logPath)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}

// Log returns everything sshd logged so far. At its LogLevel VERBOSE
// that is every connection, login ("Accepted publickey for ...") and
// session ("Starting session: command for ...") it served, so callers can
// count what a client did on the host.
func (h *Host) Log() string {
	return h.logFrom(0)
}

// LogTail returns the last lines sshd logged, to explain failures.
func (h *Host) LogTail() string {
	return tail(h.logFrom(0))
}

// tail returns the last 30 lines of s.
func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// Stop kills the host's sshd and every process below it, so open SSH
// sessions end too, as when a machine goes down. Processes of the user
// that left the session (daemons) keep running; Close kills those. Stopping
// a stopped host does nothing.
func (h *Host) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.kill()
}

// Restart starts the sshd of a stopped host again on the same port. It does
// nothing when the host runs.
func (h *Host) Restart(ctx context.Context) error {
	return h.start(ctx, true)
}

// kill stops sshd and its descendants. Called with h.mu held.
func (h *Host) kill() error {
	if h.cmd == nil {
		return nil
	}
	pid := h.cmd.Process.Pid
	// Freeze the listener first so that it accepts no connection, and
	// forks no child, while its tree is killed.
	stopErr := h.cmd.Process.Signal(syscall.SIGSTOP)
	treeErr := killTree(pid)
	killErr := h.cmd.Process.Kill()
	<-h.done
	h.cmd, h.done = nil, nil
	if errors.Is(stopErr, os.ErrProcessDone) && errors.Is(killErr, os.ErrProcessDone) {
		stopErr, killErr = nil, nil // it had died on its own
	}
	if err := errors.Join(stopErr, treeErr, killErr); err != nil {
		return fmt.Errorf("host %s: stop sshd: %w", h.User, err)
	}
	return nil
}
