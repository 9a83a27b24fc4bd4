package sshrun

// Tests against real OpenSSH servers (internal/testhosts): each test that
// needs one starts its own, and skips when the machine cannot, unless
// DEPLOY_TEST_DISALLOW_SKIP is set.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// hostOf is the deploy.Host of a test host.
func hostOf(h *testhosts.Host) deploy.Host {
	return deploy.Host{Name: h.Name, User: h.User, Addr: h.Addr, Port: h.Port}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newRunner returns a Runner with env's admin key, deploy key and
// known_hosts, changed by edit when it is not nil.
func newRunner(t *testing.T, env *testhosts.Env, edit func(*Config)) *Runner {
	t.Helper()
	c := Config{
		Key:            readFile(t, env.AdminKey),
		GitKey:         readFile(t, env.GitKey),
		KnownHosts:     env.KnownHosts,
		ConnectTimeout: 10 * time.Second,
	}
	if edit != nil {
		edit(&c)
	}
	r, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// dial logs in to h and closes the connection when the test ends.
func dial(t *testing.T, r *Runner, h *testhosts.Host) deploy.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := r.Dial(ctx, hostOf(h))
	if err != nil {
		t.Fatalf("Dial %s: %v\nsshd log:\n%s", h.Name, err, h.LogTail())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs cmd with a generous deadline and returns what it wrote to
// stdout and stderr (unless cmd brings its own writers).
func run(t *testing.T, c deploy.Conn, cmd deploy.Command) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &o
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &e
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.Run(ctx, cmd)
	return o.String(), e.String(), err
}

// checkExit checks err against the wanted status: 0 means success, -1 a
// command killed by a signal.
func checkExit(t *testing.T, err error, wantStatus int, wantMsg string) {
	t.Helper()
	if wantStatus == 0 {
		if err != nil {
			t.Fatalf("Run: got error %v, want success", err)
		}
		return
	}
	var ee *deploy.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run: got error %v (%T), want *deploy.ExitError", err, err)
	}
	if ee.Status != wantStatus {
		t.Errorf("Status: got %d (%v), want %d", ee.Status, err, wantStatus)
	}
	if got := err.Error(); got != wantMsg {
		t.Errorf("error: got %q, want %q", got, wantMsg)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	c := dial(t, newRunner(t, env, nil), env.Hosts[0])
	big := strings.Repeat("0123456789abcdef\n", 1<<16) // 1 MiB

	tests := []struct {
		name       string
		cmd        deploy.Command
		wantOut    string
		wantErrOut string
		wantStatus int
		wantMsg    string
	}{
		{
			name:       "stdout and stderr apart",
			cmd:        deploy.Command{Args: []string{"sh", "-c", "echo out; echo err >&2; echo out2"}},
			wantOut:    "out\nout2\n",
			wantErrOut: "err\n",
		},
		{
			name:       "exit status 3",
			cmd:        deploy.Command{Args: []string{"sh", "-c", "echo before; echo why >&2; exit 3"}},
			wantOut:    "before\n",
			wantErrOut: "why\n",
			wantStatus: 3,
			wantMsg:    "exit status 3",
		},
		{
			name:       "false",
			cmd:        deploy.Command{Args: []string{"false"}},
			wantStatus: 1,
			wantMsg:    "exit status 1",
		},
		{
			name:       "missing program",
			cmd:        deploy.Command{Args: []string{"pushdeploy-no-such-program"}},
			wantErrOut: "*",
			wantStatus: 127,
			wantMsg:    "exit status 127",
		},
		{
			name:       "killed by a signal",
			cmd:        deploy.Command{Args: []string{"sh", "-c", "kill -KILL $$"}},
			wantStatus: -1,
			wantMsg:    "killed by signal KILL",
		},
		{
			name:    "stdin",
			cmd:     deploy.Command{Args: []string{"cat"}, Stdin: strings.NewReader("line 1\nline 2\n")},
			wantOut: "line 1\nline 2\n",
		},
		{
			name:    "large stdin",
			cmd:     deploy.Command{Args: []string{"cat"}, Stdin: strings.NewReader(big)},
			wantOut: big,
		},
		{
			name:    "no stdin is empty input",
			cmd:     deploy.Command{Args: []string{"wc", "-c"}},
			wantOut: "0\n",
		},
		{
			name:    "dir",
			cmd:     deploy.Command{Dir: "/usr", Args: []string{"pwd"}},
			wantOut: "/usr\n",
		},
		{
			name:       "missing dir",
			cmd:        deploy.Command{Dir: "/pushdeploy-no-such-dir", Args: []string{"pwd"}},
			wantErrOut: "*",
			wantStatus: 2,
			wantMsg:    "exit status 2",
		},
		{
			name: "env",
			cmd: deploy.Command{
				Env:  []string{"A=1", "B=two words"},
				Args: []string{"sh", "-c", `printf '%s|%s\n' "$A" "$B"`},
			},
			wantOut: "1|two words\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := run(t, c, tt.cmd)
			checkExit(t, err, tt.wantStatus, tt.wantMsg)
			if stdout != tt.wantOut {
				t.Errorf("stdout: got %d bytes %.200q, want %d bytes %.200q", len(stdout), stdout, len(tt.wantOut), tt.wantOut)
			}
			// "*" means some explanation, whatever the shell's words.
			if tt.wantErrOut == "*" {
				if stderr == "" {
					t.Errorf("stderr: got nothing, want an explanation")
				}
			} else if stderr != tt.wantErrOut {
				t.Errorf("stderr: got %q, want %q", stderr, tt.wantErrOut)
			}
		})
	}
}

// TestRunHostileValues checks that Args, Env and Dir arrive on the host as
// the very strings given: nothing in them is run by the remote shell.
func TestRunHostileValues(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	c := dial(t, newRunner(t, env, nil), h)

	// World-writable, so an injected touch by the host user would work.
	marker := fmt.Sprintf("/tmp/pushdeploy-sshrun-marker-%d", time.Now().UnixNano())
	t.Cleanup(func() { os.Remove(marker) })
	hostile := []string{
		"$(touch " + marker + ")",
		"`touch " + marker + "`",
		"x; touch " + marker,
		"x && touch " + marker,
		"x | touch " + marker,
		"line\ntouch " + marker,
		"it's 'quoted'",
		`"double" \back\slash`,
		"$HOME ${HOME} $0 $1",
		"*",
		"-n",
		"",
		" spaced  out ",
		"#comment",
		"ünïcødé",
	}
	want := strings.Join(hostile, "\n") + "\n"

	t.Run("args", func(t *testing.T) {
		stdout, _, err := run(t, c, deploy.Command{Args: append([]string{"printf", `%s\n`}, hostile...)})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, stdout); diff != "" {
			t.Errorf("printf output (-want +got):\n%s", diff)
		}
	})
	t.Run("env", func(t *testing.T) {
		cmd := deploy.Command{Args: []string{"sh", "-c", `i=0; while [ $i -lt $N ]; do printenv "V$i"; i=$((i+1)); done`}}
		cmd.Env = append(cmd.Env, fmt.Sprintf("N=%d", len(hostile)))
		for i, v := range hostile {
			cmd.Env = append(cmd.Env, fmt.Sprintf("V%d=%s", i, v))
		}
		stdout, _, err := run(t, c, cmd)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, stdout); diff != "" {
			t.Errorf("variables (-want +got):\n%s", diff)
		}
	})
	t.Run("dir", func(t *testing.T) {
		// No "/" in a folder name: the marker is relative to the home
		// folder, where both commands start.
		const mark = "pushdeploy-marker"
		t.Cleanup(func() { os.Remove(h.Path(mark)) })
		name := "d $(touch " + mark + ") `touch " + mark + "`; x'y\n&& touch " + mark + " #"
		_, stderr, err := run(t, c, deploy.Command{Dir: h.Home, Args: []string{"mkdir", "--", name}})
		if err != nil {
			t.Fatalf("mkdir: %v: %s", err, stderr)
		}
		if _, err := os.Stat(h.Path(name)); err != nil {
			t.Fatalf("the folder was not made under its literal name: %v", err)
		}
		stdout, _, err := run(t, c, deploy.Command{Dir: h.Path(name), Args: []string{"pwd"}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := stdout, h.Path(name)+"\n"; got != want {
			t.Errorf("pwd: got %q, want %q", got, want)
		}
		if _, err := os.Stat(h.Path(mark)); !os.IsNotExist(err) {
			t.Errorf("marker %s: got %v, want it never created (the folder name was run by the shell)", h.Path(mark), err)
		}
	})
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("marker %s: got %v, want it never created (a value was run by the shell)", marker, err)
	}
}

// TestRunStdinNotRead checks that a command that exits without reading its
// input does not wait for a reader that never ends.
func TestRunStdinNotRead(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	c := dial(t, newRunner(t, env, nil), env.Hosts[0])
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	start := time.Now()
	_, _, err := run(t, c, deploy.Command{Args: []string{"true"}, Stdin: pr})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v", d)
	}
}

// TestConnReused checks that one Conn carries many commands, one after the
// other and at the same time, all over the same SSH connection.
func TestConnReused(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	c := dial(t, newRunner(t, env, nil), env.Hosts[0])
	// SSH_CONNECTION holds the client's port: one value, one connection.
	whoami := deploy.Command{Args: []string{"sh", "-c", `printf '%s' "$SSH_CONNECTION"; sleep 0.3`}}

	first, _, err := run(t, c, whoami)
	if err != nil || first == "" {
		t.Fatalf("Run: %q, %v", first, err)
	}
	for i := 0; i < 3; i++ {
		got, _, err := run(t, c, whoami)
		if err != nil {
			t.Fatal(err)
		}
		if got != first {
			t.Errorf("run %d: SSH_CONNECTION %q, want %q (the same connection)", i, got, first)
		}
	}

	const n = 10
	var wg sync.WaitGroup
	got := make([]string, n)
	errs := make([]error, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			cmd := whoami
			cmd.Stdout = &out
			errs[i] = c.Run(context.Background(), cmd)
			got[i] = out.String()
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Errorf("concurrent run %d: %v", i, errs[i])
		} else if got[i] != first {
			t.Errorf("concurrent run %d: SSH_CONNECTION %q, want %q", i, got[i], first)
		}
	}
	// Ten 0.3s commands one after the other would take 3s.
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("%d concurrent runs took %v: they did not run side by side", n, d)
	}
}

// TestRunFailsWhenStdinFails: a command fed from a reader that fails fails
// too, even when what it got looks complete to it. Here tar gets the first
// entries of an archive, cut at an entry boundary (as a push-mode upload
// whose Archiver failed part-way), and would exit 0.
func TestRunFailsWhenStdinFails(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	c := dial(t, newRunner(t, env, nil), env.Hosts[0])
	boom := errors.New("the archive could not be read")
	dir := "unpacked"
	stdin := io.MultiReader(bytes.NewReader(testhosts.TarPrefix(t, "a.txt", "b.txt")), iotest.ErrReader(boom))
	_, stderr, err := run(t, c, deploy.Command{Args: []string{"sh", "-c", `mkdir -p "$1" && exec tar -x -C "$1"`, "sh", dir}, Stdin: stdin})
	if !errors.Is(err, boom) {
		t.Fatalf("Run: got %v (stderr %q), want the reader's error %v", err, stderr, boom)
	}
	if !strings.Contains(err.Error(), "input") {
		t.Errorf("error %q does not say it was the command's input", err)
	}
	// The same stream without the failure is unpacked fine: tar alone
	// cannot tell the two apart.
	ok := bytes.NewReader(testhosts.TarPrefix(t, "a.txt", "b.txt"))
	if _, stderr, err := run(t, c, deploy.Command{Args: []string{"sh", "-c", `mkdir -p "$1" && exec tar -x -C "$1"`, "sh", dir}, Stdin: ok}); err != nil {
		t.Fatalf("the cut archive alone: %v (stderr %q); tar should take it", err, stderr)
	}
}
