package localrun

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

var local = deploy.Host{Name: "local", Addr: "localhost", Local: true}

func dial(t *testing.T, r *Runner) deploy.Conn {
	t.Helper()
	c, err := r.Dial(context.Background(), local)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs args (quoted by deploy.Command) and returns stdout and stderr.
func run(t *testing.T, c deploy.Conn, cmd deploy.Command) (string, string, error) {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := c.Run(context.Background(), cmd)
	return stdout.String(), stderr.String(), err
}

func TestDialRefusesOtherHosts(t *testing.T) {
	_, err := New(nil).Dial(context.Background(), deploy.Host{Name: "web1", User: "deploy", Addr: "web1", Port: 22})
	if err == nil || !strings.Contains(err.Error(), "web1: not the local host") {
		t.Fatalf("Dial(web1) = %v, want a refusal naming the host", err)
	}
	r := &Runner{Dir: filepath.Join(t.TempDir(), "missing")}
	if _, err := r.Dial(context.Background(), local); err == nil || !strings.Contains(err.Error(), "start folder") {
		t.Errorf("Dial with a missing Dir = %v, want an error", err)
	}
	r = &Runner{Shell: "/nonexistent/sh"}
	if _, err := r.Dial(context.Background(), local); err == nil || !strings.Contains(err.Error(), "shell") {
		t.Errorf("Dial with a missing shell = %v, want an error", err)
	}
}

func TestRunStartsInHomeQuotedLikeSSH(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DEPLOY_API_TOKEN", "secret")
	c := dial(t, New(nil))
	// A relative root is relative to the home folder, as over SSH.
	out, _, err := run(t, c, deploy.Command{Args: []string{"sh", "-c", `mkdir -p -- "$1" && cd -- "$1" && pwd -P && echo "token=${DEPLOY_API_TOKEN-unset}"`, "sh", "app; $(touch pwned)"}})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(home, "app; $(touch pwned)") + "\ntoken=unset\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	if _, err := os.Stat(filepath.Join(home, "pwned")); err == nil {
		t.Error("a quoted argument ran a command")
	}

	// Dir and Env of the Command apply; nil writers discard.
	out, _, err = run(t, c, deploy.Command{Dir: filepath.Join(home, "app; $(touch pwned)"), Env: []string{"X=a b"}, Args: []string{"sh", "-c", `echo "$X in $(basename "$(pwd)")"`}})
	if err != nil || out != "a b in app; $(touch pwned)\n" {
		t.Errorf("got %q, %v", out, err)
	}
	if err := c.Run(context.Background(), deploy.Command{Args: []string{"echo", "nobody listens"}}); err != nil {
		t.Error(err)
	}
}

func TestRunExitStatus(t *testing.T) {
	c := dial(t, &Runner{Dir: t.TempDir()})
	_, stderr, err := run(t, c, deploy.Command{Args: []string{"sh", "-c", "echo failing >&2; exit 3"}})
	var exit *deploy.ExitError
	if !errors.As(err, &exit) || exit.Status != 3 || err.Error() != "exit status 3" {
		t.Fatalf("got %v, want exit status 3", err)
	}
	if stderr != "failing\n" {
		t.Errorf("stderr %q", stderr)
	}
	_, _, err = run(t, c, deploy.Command{Args: []string{"sh", "-c", "kill -KILL $$"}})
	if !errors.As(err, &exit) || exit.Status != -1 || exit.Signal != "KILL" || err.Error() != "killed by signal KILL" {
		t.Errorf("got %v, want killed by signal KILL", err)
	}
	// The host-side timeout renders as coreutils timeout: 124.
	_, _, err = run(t, c, deploy.Command{Timeout: time.Second, Args: []string{"sleep", "5"}})
	if !errors.As(err, &exit) || exit.Status != 124 {
		t.Errorf("got %v, want exit status 124 from timeout", err)
	}
}

func TestRunStdin(t *testing.T) {
	c := dial(t, &Runner{Dir: t.TempDir()})
	out, _, err := run(t, c, deploy.Command{Args: []string{"tr", "a-z", "A-Z"}, Stdin: strings.NewReader("hello\n")})
	if err != nil || out != "HELLO\n" {
		t.Errorf("got %q, %v", out, err)
	}
	// A reader that blocks after the command exited does not hold Run.
	blocked, hold := io.Pipe()
	defer hold.Close()
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background(), deploy.Command{Args: []string{"true"}, Stdin: blocked}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run waited for a blocking stdin after the command ended")
	}
	// The lock's pattern: a command that lives until its stdin closes.
	stdin, hold2 := io.Pipe()
	running := newStarted()
	go func() {
		done <- c.Run(context.Background(), deploy.Command{Args: []string{"sh", "-c", "echo running; exec cat >/dev/null"}, Stdin: stdin, Stdout: running})
	}()
	running.wait(t)
	hold2.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing stdin did not end the command")
	}
}

func TestRunCancelKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	c := dial(t, &Runner{Dir: dir, KillAfter: time.Second})
	pidFile := filepath.Join(dir, "child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// A child that ignores TERM, in the background, keeping stdout open.
	script := `sh -c 'trap "" TERM; echo $$ > "$1"; while :; do sleep 0.1; done' child "$1" & wait`
	go func() {
		done <- c.Run(ctx, deploy.Command{Args: []string{"sh", "-c", script, "sh", pidFile}, Stdout: io.Discard})
	}()
	waitFor(t, pidFile)
	data, _ := os.ReadFile(pidFile)
	pid := strings.TrimSpace(string(data))
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	t.Logf("returned %.2fs after cancel", time.Since(start).Seconds())
	// Run returns once the group is gone: a child that ignores TERM got KILL.
	if alive(pid) {
		t.Fatalf("child %s that ignores TERM still runs after Run returned", pid)
	}
}

func TestCloseStopsCommands(t *testing.T) {
	c, err := (&Runner{Dir: t.TempDir(), KillAfter: time.Second}).Dial(context.Background(), local)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	running := newStarted()
	go func() {
		done <- c.Run(context.Background(), deploy.Command{Args: []string{"sh", "-c", "echo running; exec sleep 30"}, Stdout: running})
	}()
	running.wait(t)
	c.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("got %v, want connection closed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the command")
	}
	if err := c.Run(context.Background(), deploy.Command{Args: []string{"true"}}); err == nil {
		t.Error("Run after Close succeeded")
	}
}

func TestBackgroundProcessDoesNotHoldRun(t *testing.T) {
	c := dial(t, &Runner{Dir: t.TempDir(), KillAfter: 500 * time.Millisecond})
	var out strings.Builder
	// A restart command that starts a daemon without redirecting it.
	err := c.Run(context.Background(), deploy.Command{Args: []string{"sh", "-c", "sleep 3 & echo started"}, Stdout: &out})
	if err != nil || !strings.HasPrefix(out.String(), "started") {
		t.Errorf("got %q, %v", out.String(), err)
	}
}

func TestForwardAgentLendsForOneCommand(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "/the/users/own/agent")
	var lent, stopped atomic.Int32
	sock := filepath.Join(t.TempDir(), "agent.sock")
	r := &Runner{Dir: t.TempDir(), Lend: func(ctx context.Context, dir string) (string, func(), error) {
		lent.Add(1)
		return sock, func() { stopped.Add(1) }, nil
	}}
	c := dial(t, r)
	out, _, err := run(t, c, deploy.Command{ForwardAgent: true, Args: []string{"sh", "-c", `echo "$SSH_AUTH_SOCK"`}})
	if err != nil || out != sock+"\n" {
		t.Errorf("with ForwardAgent: SSH_AUTH_SOCK %q, %v; want %s", out, err, sock)
	}
	if lent.Load() != 1 || stopped.Load() != 1 {
		t.Errorf("lent %d, stopped %d times; want 1, 1", lent.Load(), stopped.Load())
	}
	out, _, err = run(t, c, deploy.Command{Args: []string{"sh", "-c", `echo "$SSH_AUTH_SOCK"`}})
	if err != nil || out != "/the/users/own/agent\n" || lent.Load() != 1 {
		t.Errorf("without ForwardAgent: SSH_AUTH_SOCK %q, %v, lent %d; want the user's own", out, err, lent.Load())
	}

	// Without a deploy key, asking for it fails rather than running
	// with whatever agent is around.
	c = dial(t, &Runner{Dir: t.TempDir()})
	if _, _, err := run(t, c, deploy.Command{ForwardAgent: true, Args: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "DEPLOY_GIT_KEY") {
		t.Errorf("ForwardAgent without Lend: %v", err)
	}
}

// started is a command's Stdout that tells the test when the command
// has written something: a command that prints a line first is then
// known to run.
type started struct {
	once sync.Once
	ch   chan struct{}
}

func newStarted() *started { return &started{ch: make(chan struct{})} }

func (s *started) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.ch) })
	return len(p), nil
}

func (s *started) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the command printed nothing for 10s")
	}
}

func waitFor(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if data, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(data), "\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (and is not a zombie).
func alive(pid string) bool {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(data)[strings.LastIndexByte(string(data), ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// TestRunFailsWhenStdinFails: a command fed from a reader that fails fails
// too, even when what it got looks complete to it (as sshrun's test of the
// same name, with tar and an archive cut at an entry boundary).
func TestRunFailsWhenStdinFails(t *testing.T) {
	dir := t.TempDir()
	c := dial(t, &Runner{Dir: dir})
	boom := errors.New("the archive could not be read")
	untar := []string{"sh", "-c", `mkdir -p "$1" && exec tar -x -C "$1"`, "sh", "unpacked"}
	stdin := io.MultiReader(bytes.NewReader(testhosts.TarPrefix(t, "a.txt", "b.txt")), iotest.ErrReader(boom))
	_, stderr, err := run(t, c, deploy.Command{Args: untar, Stdin: stdin})
	if !errors.Is(err, boom) {
		t.Fatalf("Run: got %v (stderr %q), want the reader's error %v", err, stderr, boom)
	}
	if !strings.Contains(err.Error(), "input") {
		t.Errorf("error %q does not say it was the command's input", err)
	}
	if _, stderr, err := run(t, c, deploy.Command{Args: untar, Stdin: bytes.NewReader(testhosts.TarPrefix(t, "a.txt", "b.txt"))}); err != nil {
		t.Fatalf("the cut archive alone: %v (stderr %q); tar should take it", err, stderr)
	}
}

// TestLendUntilEndsTheLoanEarly: a command whose LendUntil closes while it
// runs has its loan ended then, not when it exits (the prepare command
// fetches first and runs repository code later).
func TestLendUntilEndsTheLoanEarly(t *testing.T) {
	stopped := make(chan struct{}, 2)
	r := &Runner{Dir: t.TempDir(), Lend: func(ctx context.Context, dir string) (string, func(), error) {
		return filepath.Join(dir, "agent.sock"), func() { stopped <- struct{}{} }, nil
	}}
	c := dial(t, r)
	until := make(chan struct{})
	in, feed := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		_, _, err := run(t, c, deploy.Command{ForwardAgent: true, LendUntil: until, Stdin: in, Args: []string{"sh", "-c", "read -r line"}})
		errc <- err
	}()
	close(until)
	select {
	case <-stopped:
	case err := <-errc:
		t.Fatalf("the command ended (%v) before its loan did", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the loan did not end when LendUntil closed")
	}
	feed.Write([]byte("done\n"))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 0 {
		t.Errorf("the loan was ended %d more times", len(stopped))
	}
}
