// Package deploytest holds what the tests of deploy and of the packages
// that watch deployments (metrics) share to run deploy's real remote
// scripts in local folders, one folder a host: the app's git repository, a
// stand-in python, a clock that starts each deployment in a second of its
// own, and a holder of a host's lock. It imports nothing of the module but
// testhosts, so that deploy's own in-package tests can use it.
package deploytest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// FakePython stands in for python3 where building real venvs is not the
// point: "-c …" prints a version line, "-m venv DIR" makes DIR/bin/python (a
// copy of itself), and "-m pip install -r FILE" fails when FILE mentions
// "broken", with pip's own message. The end-to-end tests run the real one.
const FakePython = `#!/bin/sh
if [ "$1" = -c ]; then
	echo "fake python 3.0 $0"; exit 0
fi
if [ "$1 $2" = "-m venv" ]; then
	mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
if [ "$1 $2 $3" = "-m pip install" ]; then
	shift 3
	while [ $# -gt 0 ]; do [ "$1" = -r ] && req=$2; shift; done
	if grep -q broken "$req"; then echo "ERROR: No matching distribution found for broken" >&2; exit 1; fi
	echo "installed $(cat "$req")"; exit 0
fi
exit 3
`

// WriteFakePython writes FakePython to dir/python and returns its path.
func WriteFakePython(t testing.TB, dir string) string {
	t.Helper()
	py := filepath.Join(dir, "python")
	if err := os.WriteFile(py, []byte(FakePython), 0o755); err != nil {
		t.Fatal(err)
	}
	return py
}

// Repo is the app's git repository, made with the git CLI, with a work
// tree in Dir and one branch, release.
type Repo struct {
	Dir string
	t   testing.TB
	n   int
}

// NewRepo makes an empty repository in dir, creating dir. It skips the test, or fails it (see testhosts.SkipOrFail), when
// git, flock or timeout is missing: the deploy scripts need the last two.
func NewRepo(t testing.TB, dir string) *Repo {
	t.Helper()
	testhosts.NeedTools(t, "git", "flock", "timeout")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Repo{Dir: dir, t: t}
	r.Git("init", "-q", "-b", "release")
	return r
}

// Git runs git with args in the work tree and returns its trimmed output;
// a failure fails the test.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit writes requirements.txt holding req (and app.py, so that every
// commit differs), commits everything in the work tree and returns the
// commit's hash.
func (r *Repo) Commit(req string) string {
	r.t.Helper()
	r.n++
	for name, content := range map[string]string{"requirements.txt": req + "\n", "app.py": "# commit " + strconv.Itoa(r.n) + "\n"} {
		if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.Git("add", "-A")
	r.Git("commit", "-q", "-m", "commit "+strconv.Itoa(r.n))
	return r.Git("rev-parse", "HEAD")
}

// Clock is a Deployer.Now for tests that deploy several times in a row.
// It is the real time moved forward one second at each Tick: a deployment
// that starts after a Tick starts more than a second after every one that
// started before it, so its release name (UTC seconds) is its own and
// sorts after theirs, without the test waiting for a second to pass.
// Durations measured with it are real. Safe for concurrent use.
type Clock struct{ offset atomic.Int64 }

// Now is the real time plus a second for each Tick so far.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Tick moves the clock one second forward.
func (c *Clock) Tick() { c.offset.Add(int64(time.Second)) }

// HoldLock takes the lock on path with flock(1), given flockArgs (such as
// -s for a shared lock), in a process of its own, as another deployer or
// a command it left running would. It returns once the lock is held, and
// the returned func releases it (the test's cleanup does too).
func HoldLock(t testing.TB, path string, flockArgs ...string) (release func()) {
	t.Helper()
	testhosts.NeedTools(t, "flock")
	// The holder says so once flock has the lock, then waits for its
	// stdin to close: releasing needs no signal, and nothing sleeps.
	args := slices.Concat(flockArgs, []string{"-o", path, "sh", "-c", "echo held; exec cat >/dev/null"})
	holder := exec.Command("flock", args...)
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			stdin.Close()
			_ = holder.Wait()
		})
	}
	t.Cleanup(release)
	said := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		said <- line
	}()
	select {
	case line := <-said:
		if line != "held\n" {
			_ = holder.Process.Kill()
			t.Fatalf("flock %s: the holder said %q, not that it holds the lock", strings.Join(args, " "), line)
		}
	case <-time.After(10 * time.Second):
		_ = holder.Process.Kill()
		t.Fatalf("flock %s: no lock after 10s", strings.Join(args, " "))
	}
	return release
}
