package testhosts_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// output runs cmd and returns its trimmed stdout, failing the test with
// stderr on error.
func output(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s: %v: %s", cmd, err, ee.Stderr)
		}
		t.Fatalf("%s: %v", cmd, err)
	}
	return strings.TrimSpace(string(out))
}

// fails runs cmd, expects it to fail and returns its combined output.
func fails(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("%s succeeded, want failure; output: %s", cmd, out)
	}
	return string(out)
}

func TestHostsLogIn(t *testing.T) {
	t.Parallel()
	e := testhosts.New(t, testhosts.Options{Hosts: 2})
	ctx := t.Context()

	hostsFile, err := os.ReadFile(e.HostsFile)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range e.Hosts {
		names = append(names, h.Name)
	}
	if got, want := string(hostsFile), strings.Join(names, "\n")+"\n"; got != want {
		t.Errorf("hosts file = %q, want %q", got, want)
	}
	if e.Hosts[0].Home == e.Hosts[1].Home || e.Hosts[0].User == e.Hosts[1].User {
		t.Errorf("hosts share a user or home: %+v, %+v", e.Hosts[0], e.Hosts[1])
	}

	for _, h := range e.Hosts {
		// The client is spelled out here rather than through e.SSH, to
		// check the documented files with the options callers use.
		cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-i", e.AdminKey,
			"-o", "UserKnownHostsFile="+e.KnownHosts, "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
			"-p", itoa(h.Port), h.User+"@"+h.Addr, "id -un; pwd; echo $PATH")
		lines := strings.Split(output(t, cmd), "\n")
		if len(lines) != 3 {
			t.Fatalf("%s: got %q, want user, home and PATH", h.Name, lines)
		}
		if lines[0] != h.User {
			t.Errorf("%s: id -un = %q, want %q", h.Name, lines[0], h.User)
		}
		if lines[1] != h.Home {
			t.Errorf("%s: pwd = %q, want %q", h.Name, lines[1], h.Home)
		}
		if !strings.Contains(":"+lines[2]+":", ":/usr/bin:") {
			t.Errorf("%s: PATH = %q, want /usr/bin in it", h.Name, lines[2])
		}
		if got := output(t, e.SSH(ctx, h, "sh", "-c", "echo \"$1\"", "sh", "a b'c")); got != "a b'c" {
			t.Errorf("%s: quoted argument came back as %q", h.Name, got)
		}
	}
}

func TestWheelInstallsOffline(t *testing.T) {
	t.Parallel()
	e := testhosts.New(t, testhosts.Options{Hosts: 1})
	ctx := t.Context()

	venv := filepath.Join(t.TempDir(), "venv")
	output(t, exec.CommandContext(ctx, "python3", "-m", "venv", venv))
	output(t, exec.CommandContext(ctx, filepath.Join(venv, "bin", "pip"), "install", "-q",
		"--no-index", "--find-links", e.WheelDir, "pdtestdep==2.0"))
	got := output(t, exec.CommandContext(ctx, filepath.Join(venv, "bin", "python"), "-c",
		"import pdtestdep; print(pdtestdep.VERSION)"))
	if got != "2.0" {
		t.Errorf("pdtestdep.VERSION = %q, want 2.0", got)
	}

	// The app installs and answers on a host, as its user: WheelDir is
	// readable there and python3 is on the remote PATH.
	h := e.Hosts[0]
	for name, content := range e.AppFiles("1.0") {
		cmd := e.SSH(ctx, h, "sh", "-c", `mkdir -p app && cat > "app/$1"`, "sh", name)
		cmd.Stdin = strings.NewReader(content)
		output(t, cmd)
	}
	script := `cd app && python3 -m venv venv && venv/bin/pip install -q -r requirements.txt &&
venv/bin/python -c 'import app
print(b"".join(app.application({}, lambda status, headers: None)).decode())'`
	if got := output(t, e.SSH(ctx, h, "sh", "-c", script)); got != "1.0" {
		t.Errorf("app answered %q, want 1.0", got)
	}
}

func TestGitServerIsReadOnly(t *testing.T) {
	t.Parallel()
	e := testhosts.New(t, testhosts.Options{Hosts: 1})
	ctx := t.Context()

	sha, err := e.Commit(ctx, map[string]string{"dir/hello.txt": "hello\n"}, "first")
	if err != nil {
		t.Fatal(err)
	}
	gitEnv := append(os.Environ(), "GIT_SSH_COMMAND="+e.GitSSHCommand(), "GIT_TERMINAL_PROMPT=0")
	clone := filepath.Join(t.TempDir(), "clone")
	cmd := exec.CommandContext(ctx, "git", "clone", "-q", "-b", "release", e.RepoURL, clone)
	cmd.Env = gitEnv
	output(t, cmd)
	if got := output(t, exec.CommandContext(ctx, "git", "-C", clone, "rev-parse", "HEAD")); got != sha {
		t.Errorf("clone HEAD = %s, want %s", got, sha)
	}
	if b, err := os.ReadFile(filepath.Join(clone, "dir", "hello.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("dir/hello.txt = %q, %v; want hello", b, err)
	}

	sha2, err := e.Remove(ctx, []string{"dir/hello.txt"}, "second")
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.CommandContext(ctx, "git", "-C", clone, "pull", "-q", "--ff-only")
	cmd.Env = gitEnv
	output(t, cmd)
	if got := output(t, exec.CommandContext(ctx, "git", "-C", clone, "rev-parse", "HEAD")); got != sha2 {
		t.Errorf("after pull HEAD = %s, want %s", got, sha2)
	}
	if _, err := os.Stat(filepath.Join(clone, "dir", "hello.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed file still there: %v", err)
	}

	// Writing, with the deploy key, is refused by the forced command.
	output(t, exec.CommandContext(ctx, "git", "-C", clone, "-c", "user.name=t", "-c", "user.email=t@t",
		"commit", "-q", "--allow-empty", "-m", "evil"))
	cmd = exec.CommandContext(ctx, "git", "-C", clone, "push", "origin", "HEAD:release")
	cmd.Env = gitEnv
	if out := fails(t, cmd); !strings.Contains(out, "refused") {
		t.Errorf("push failed without the refusal message: %s", out)
	}

	sshGit := func(key string, args ...string) *exec.Cmd {
		a := []string{"-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
			"-o", "UserKnownHostsFile=" + e.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
			"-p", itoa(e.Git.Port), e.Git.User + "@" + e.Git.Addr}
		return exec.CommandContext(ctx, "ssh", append(a, args...)...)
	}
	if out := fails(t, sshGit(e.AdminKey, "id")); !strings.Contains(out, "Permission denied") {
		t.Errorf("admin key on the git server: want Permission denied, got %s", out)
	}
	if out := fails(t, sshGit(e.GitKey, "id")); !strings.Contains(out, "refused") {
		t.Errorf("deploy key running id: want refused, got %s", out)
	}
	fails(t, sshGit(e.GitKey))
	fails(t, sshGit(e.GitKey, "git-receive-pack '"+strings.TrimPrefix(e.RepoURL, "ssh://"+e.Git.User+"@"+e.Git.Addr+":"+itoa(e.Git.Port))+"'"))
}

func TestStopRestart(t *testing.T) {
	t.Parallel()
	e := testhosts.New(t, testhosts.Options{Hosts: 1})
	ctx := t.Context()
	h := e.Hosts[0]

	// An open session must end with the host.
	session := e.SSH(ctx, h, "sh", "-c", "echo started; sleep 60")
	stdout, err := session.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("session said %q, %v; want started", line, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- session.Wait() }()

	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err == nil {
			t.Error("session ended cleanly, want it cut off")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session still open 10s after Stop")
	}
	fails(t, e.SSH(ctx, h, "true"))
	if err := h.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	if err := h.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := output(t, e.SSH(ctx, h, "id", "-un")); got != h.User {
		t.Errorf("after Restart: id -un = %q, want %q", got, h.User)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	e := testhosts.New(t, testhosts.Options{Hosts: 1})
	ctx := t.Context()
	users := []string{e.Hosts[0].User, e.Git.User}
	var uids []string
	for _, u := range users {
		uids = append(uids, output(t, exec.CommandContext(ctx, "id", "-u", u)))
	}

	// A daemon that left its session must not keep the user alive.
	output(t, e.SSH(ctx, e.Hosts[0], "sh", "-c", "nohup sleep 300 >/dev/null 2>&1 &"))

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, u := range users {
		if out, err := exec.CommandContext(ctx, "getent", "passwd", u).CombinedOutput(); err == nil {
			t.Errorf("user %s still exists: %s", u, out)
		}
	}
	if _, err := os.Stat(e.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s still there: %v", e.Dir, err)
	}
	for _, uid := range uids {
		// pgrep exits 1 when nothing matches. Zombies are fine: they are
		// dead, merely not reaped when PID 1 does not reap orphans.
		out, err := exec.CommandContext(ctx, "pgrep", "-u", uid, "-r", "R,S,D,T,t").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("pgrep -u %s: %v: %s (want no processes)", uid, err, out)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
