// Package pgtest starts real PostgreSQL servers for tests: Debian's
// postgresql package (initdb and postgres from /usr/lib/postgresql/N/bin)
// run as an unprivileged user, with a temporary data folder, listening on
// 127.0.0.1 on a free port and on a unix socket in that folder, fsync off.
//
// A package's tests share one server, started on first use and stopped by
// its pid after the tests:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
//	func TestX(t *testing.T) {
//		url := pgtest.New(t) // a fresh database of its own: t_<random>
//		...
//	}
//
// A test that stops and starts the server (the database going away in the
// middle of a deployment) takes a server of its own with Start, so that it
// does not disturb the tests running beside it.
//
// When PostgreSQL is not installed the tests skip, or fail when
// DEPLOY_TEST_DISALLOW_SKIP is set (as in CI): see testhosts.SkipOrFail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// osUser is the user the servers run as when the tests run as root
// (PostgreSQL refuses to run as root). Debian's postgresql-common creates
// it; only processes this package started are ever signalled, never the
// user's other processes (a system cluster may run as it too).
const osUser = "postgres"

// superuser is the database role the servers are initialised with.
const superuser = "pgtest"

// Server is one PostgreSQL server of the tests.
type Server struct {
	dir      string // temporary folder: data/, the socket, the log
	port     int
	password string
	bin      string // folder of initdb and postgres
	cred     *syscall.Credential
	// durable: fsync and full_page_writes stay on, as in production
	// (StartServer's ServerOptions.Durable); off for tests.
	durable bool

	mu   sync.Mutex
	proc *process // nil when stopped
}

// process is a running postgres, and its end.
type process struct {
	pid  int
	done chan struct{} // closed when it has exited
	err  error         // its exit status, once done is closed
}

var shared struct {
	mu      sync.Mutex
	inMain  bool
	srv     *Server
	err     error // the first start's failure, reported to every test
	skipMsg string
}

// Run runs the tests (m.Run) and then stops the shared server, if a test
// started it. Call it from TestMain: os.Exit(pgtest.Run(m)).
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	srv := shared.srv
	shared.srv = nil
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// New returns the URL of a new, empty database on the shared server (a
// postgres:// URL with a password, over TCP to 127.0.0.1). The database is
// dropped in t.Cleanup. The package's TestMain must call Run.
func New(t testing.TB) string {
	t.Helper()
	srv := sharedServer(t)
	return srv.NewDatabase(t)
}

// Shared returns the shared server that New makes databases on (started
// on first use), for a Proxy in front of it. Never Stop it: the package's
// other tests use it; Start a server of the test's own for that.
func Shared(t testing.TB) *Server {
	t.Helper()
	return sharedServer(t)
}

func sharedServer(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("pgtest.New: the package's TestMain must call pgtest.Run (it stops the shared server)")
	}
	if shared.skipMsg != "" {
		testhosts.SkipOrFail(t, shared.skipMsg)
	}
	if shared.err != nil {
		t.Fatalf("pgtest: shared server: %v", shared.err)
	}
	if shared.srv == nil {
		if msg := available(); msg != "" {
			shared.skipMsg = msg
			testhosts.SkipOrFail(t, msg)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.srv, shared.err = start(ctx, false)
		if shared.err != nil {
			t.Fatalf("pgtest: shared server: %v", shared.err)
		}
	}
	return shared.srv
}

// Start starts a server of the test's own, stopped (and its folder
// removed) in t.Cleanup. Use it to Stop and Start the server in the test.
func Start(t testing.TB) *Server {
	t.Helper()
	if msg := available(); msg != "" {
		testhosts.SkipOrFail(t, msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := start(ctx, false)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// available says why no server can be started here, "" when one can.
func available() string {
	if testing.Short() {
		return "pgtest: starts a PostgreSQL server; skipped under -short"
	}
	if _, err := binDir(); err != nil {
		return "pgtest: " + err.Error()
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(osUser); err != nil {
			return "pgtest: no user " + osUser + " to run PostgreSQL as (Debian's postgresql package creates it)"
		}
	}
	return ""
}

// binDir finds the folder holding initdb and postgres: the newest
// /usr/lib/postgresql/N/bin.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var found []string
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "postgres")) {
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		return "", errors.New("PostgreSQL is not installed (no /usr/lib/postgresql/N/bin/postgres; apt-get install postgresql)")
	}
	version := func(d string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return n
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	return found[0], nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// start initialises a data folder and starts postgres on it, durable:
// with fsync on.
func start(ctx context.Context, durable bool) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, password: randomHex(16), durable: durable}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(osUser)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", osUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parents are 0700 root's, which the server's user
	// could not traverse; and a short path keeps the socket's path under
	// the unix limit.
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, err
	}
	if err := s.initdb(ctx); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	// A free port can be taken between choosing and binding it: try again.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.startProcess(ctx); err == nil || attempt == 4 || !strings.Contains(err.Error(), "could not") {
			break
		}
	}
	if err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) initdb(ctx context.Context) error {
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		if err := os.Chown(pwfile, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	defer os.Remove(pwfile)
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"),
		"-D", filepath.Join(s.dir, "data"), "-U", superuser, "--pwfile", pwfile,
		"--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startProcess starts postgres and waits until it answers.
func (s *Server) startProcess(ctx context.Context) error {
	logPath := filepath.Join(s.dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"-D", filepath.Join(s.dir, "data"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "max_connections=200", "-c", "log_min_messages=warning"}
	if !s.durable {
		// Speed over durability against a machine crash (never fsync), while a
		// commit still reaches the kernel before it returns (synchronous_commit
		// stays on): a killed server keeps what it committed, as tests of
		// durable accepts need.
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: a test binary killed (a -timeout panic, SIGKILL) takes its
	// servers with it. The signal follows the OS thread that started the
	// child, so that thread stays locked to a goroutine until the child ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		runtime.UnlockOSThread()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := s.waitReady(ctx, p); err != nil {
		_ = syscall.Kill(p.pid, syscall.SIGQUIT)
		<-p.done
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("postgres on port %d: %w: %s", s.port, err, strings.TrimSpace(string(log)))
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady connects until the server answers, it exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.url("postgres"))
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// URL is the URL of database name on s.
func (s *Server) URL(name string) string { return s.url(name) }

func (s *Server) url(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port is the TCP port s listens on (127.0.0.1), the same after a restart.
func (s *Server) Port() int { return s.port }

// SocketDir is the folder of s's unix socket (.s.PGSQL.PORT).
func (s *Server) SocketDir() string { return s.dir }

// NewDatabase creates an empty database t_<random> on s, dropped in
// t.Cleanup (when the server is running then), and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := "t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if !s.Running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: a test may leave connections open (a pool closed late).
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s.url(name)
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// Running says whether s's postgres is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Stop stops the server the way an administrator's fast shutdown does
// (SIGINT: open connections are ended, their transactions rolled back)
// and waits for it to exit. The data stays; Start starts it again.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.signal(syscall.SIGINT); err != nil {
		t.Fatalf("pgtest: stop: %v", err)
	}
}

// Kill ends the server the way a crash does, for its clients: an
// immediate shutdown (SIGQUIT) drops every connection at once, writes no
// checkpoint, and the next Start recovers from the WAL. (SIGKILL to the
// postmaster alone would leave its backends, each in a process group of its
// own, holding the shared memory that a new start refuses to share.)
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.signal(syscall.SIGQUIT); err != nil {
		t.Fatalf("pgtest: kill: %v", err)
	}
}

// signal sends sig to the running postmaster and waits for it to exit
// (it waits for its backends first).
func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return errors.New("not running")
	}
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %d: %w", p.pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("postgres %d did not exit within a minute of signal %d", p.pid, sig)
	}
}

// Start starts the stopped server again, on the same port and data.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if s.Running() {
		t.Fatal("pgtest: start: already running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.startProcess(ctx); err != nil {
		t.Fatalf("pgtest: start: %v", err)
	}
}

// close stops the server (fast shutdown) when it runs, and removes its
// folder.
func (s *Server) close() error {
	var err error
	if s.Running() {
		err = s.signal(syscall.SIGINT)
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("pgtest: close server on port %d: %w", s.port, err)
	}
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
