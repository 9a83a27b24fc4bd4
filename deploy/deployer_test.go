package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/deploytest"
)

// shellConn is a fake Conn that runs each command with the local /bin/sh,
// in a folder that plays the host's home. It exercises the real remote
// scripts without SSH; the end-to-end tests do the same over real sshd.
type shellConn struct {
	name string
	home string
	d    *fakeDialer
}

func (c *shellConn) Run(ctx context.Context, cmd Command) error {
	c.d.mu.Lock()
	c.d.commands[c.name]++
	c.d.mu.Unlock()
	x := exec.CommandContext(ctx, "/bin/sh", "-c", cmd.String())
	x.Dir = c.home
	x.Env = append(os.Environ(), "HOME="+c.home)
	x.Stdout, x.Stderr = orDiscard(cmd.Stdout), orDiscard(cmd.Stderr)
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	x.Cancel = func() error { return syscall.Kill(-x.Process.Pid, syscall.SIGTERM) }
	// As in sshrun: copy stdin ourselves, so that Wait does not wait for
	// a reader that blocks after the command has exited.
	stdin, err := x.StdinPipe()
	if err != nil {
		return err
	}
	if err := x.Start(); err != nil {
		return err
	}
	go func() {
		if cmd.Stdin != nil {
			_, _ = io.Copy(stdin, cmd.Stdin)
		}
		stdin.Close()
	}()
	err = x.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Status: ee.ExitCode()}
	}
	return err
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func (c *shellConn) Close() error { return nil }

func itoa(i int) string { return strconv.Itoa(i) }

// deployNow runs a deployment of p on hosts now, as the command line does.
func deployNow(d *Deployer, hosts []Host, p Push) (*Deployment, error) {
	dep := NewDeployment(Request{Trigger: "cli", Push: p}, d.now())
	err := d.Run(context.Background(), dep, hosts)
	return dep, err
}

type fakeDialer struct {
	homes    map[string]string // host name -> home folder
	err      map[string]error
	mu       sync.Mutex
	dialed   []string
	commands map[string]int // host name -> commands run there
}

func (d *fakeDialer) Dial(_ context.Context, h Host) (Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dialed = append(d.dialed, h.Name)
	if err := d.err[h.Name]; err != nil {
		return nil, err
	}
	return &shellConn{name: h.Name, home: d.homes[h.Name], d: d}, nil
}

func (d *fakeDialer) commandsOn(host string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commands[host]
}

type fakeResolver struct {
	rel Release
	err error
}

func (r fakeResolver) Resolve(context.Context, Push) (Release, error) { return r.rel, r.err }

// rig runs the real remote scripts through shellConn, in one folder per
// host, from a real git repository; only python is a stand-in
// (deploytest.FakePython). Its Deployer's clock moves a second forward at
// each deploy, so that every deployment has its own release name.
type rig struct {
	t       *testing.T
	dir     string
	repo    string
	src     *deploytest.Repo
	clock   *deploytest.Clock
	dialer  *fakeDialer
	hosts   []Host
	d       *Deployer
	commits []string
}

func newRig(t *testing.T, n int) *rig {
	t.Helper()
	dir := t.TempDir()
	src := deploytest.NewRepo(t, filepath.Join(dir, "repo"))
	r := &rig{t: t, dir: dir, repo: src.Dir, src: src, clock: &deploytest.Clock{}, dialer: &fakeDialer{homes: map[string]string{}, commands: map[string]int{}}}
	py := deploytest.WriteFakePython(t, dir)
	for i := 1; i <= n; i++ {
		name := "web" + itoa(i)
		home := filepath.Join(dir, name)
		r.must(os.MkdirAll(home, 0o755))
		r.dialer.homes[name] = home
		r.hosts = append(r.hosts, Host{Name: name, User: "deploy", Addr: name, Port: 22})
	}
	r.d = &Deployer{
		Dialer: r.dialer, Root: "app", Python: py, LockTimeout: time.Second, StepTimeout: 20 * time.Second,
		RestartCmd:   `env | grep -E '^(RELEASE_DIR|CURRENT_DIR|COMMIT|BRANCH|DEPLOYMENT_ID|APP_PROCESSES|APP_THREADS)=' | sort > "$HOME/restart.env"; pwd -P >> "$HOME/restart.env"`,
		AppProcesses: 2, AppThreads: 15, Now: r.clock.Now,
	}
	return r
}

func (r *rig) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

// commit writes requirements.txt and commits; the resolver then returns it.
func (r *rig) commit(req string) string {
	r.t.Helper()
	sha := r.src.Commit(req)
	r.commits = append(r.commits, sha)
	r.d.Resolver = fakeResolver{rel: Release{RepoURL: r.repo, Branch: "release", Commit: sha}}
	return sha
}

func (r *rig) deploy() (*Deployment, error) {
	r.t.Helper()
	r.clock.Tick()
	return deployNow(r.d, r.hosts, Push{Branch: "release"})
}

func (r *rig) current(host string) string {
	target, err := os.Readlink(filepath.Join(r.dialer.homes[host], "app", "current"))
	if err != nil {
		return ""
	}
	return target
}

func (r *rig) releases(host string) []string {
	entries, _ := os.ReadDir(filepath.Join(r.dialer.homes[host], "app", "releases"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestDeploySwitchesEveryHost(t *testing.T) {
	r := newRig(t, 2)
	sha := r.commit("flask")
	dep, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status != StatusSucceeded {
		t.Errorf("status %s", dep.Status)
	}
	for _, h := range r.hosts {
		home := r.dialer.homes[h.Name]
		if got, want := r.current(h.Name), "releases/"+dep.ReleaseName; got != want {
			t.Errorf("%s: current -> %q, want %q", h.Name, got, want)
		}
		rev, _ := os.ReadFile(filepath.Join(home, "app", "current", "REVISION"))
		if strings.TrimSpace(string(rev)) != sha {
			t.Errorf("%s: REVISION %q, want %s", h.Name, rev, sha)
		}
		env, _ := os.ReadFile(filepath.Join(home, "restart.env"))
		for _, want := range []string{
			"COMMIT=" + sha, "BRANCH=release", "DEPLOYMENT_ID=" + dep.ID, "APP_PROCESSES=2", "APP_THREADS=15",
			"CURRENT_DIR=" + filepath.Join(home, "app", "current"),
			"RELEASE_DIR=" + filepath.Join(home, "app", "releases", dep.ReleaseName),
		} {
			if !strings.Contains(string(env), want+"\n") {
				t.Errorf("%s: restart env lacks %q:\n%s", h.Name, want, env)
			}
		}
		log, _ := os.ReadFile(filepath.Join(home, "app", "revisions.log"))
		if f := strings.Fields(string(log)); len(f) != 5 || f[1] != "deploy" || f[2] != dep.ReleaseName || f[3] != sha || f[4] != dep.ID {
			t.Errorf("%s: revisions.log %q", h.Name, log)
		}
	}
	if got, want := stepNames(dep.Hosts[0]), "connect prepare fetch pip-copy lock checkout venv pip before-switch switch restart after-switch"; got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
}

func TestDeployFailureLeavesHostsAsTheyWere(t *testing.T) {
	r := newRig(t, 3)
	r.commit("flask")
	first, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	r.commit("broken")
	before2, before3 := r.dialer.commandsOn("web2"), r.dialer.commandsOn("web3")
	_, err = r.deploy()
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a *StepError", err)
	}
	if se.Host != "web1" || se.Step != "pip" || !strings.Contains(se.Error(), "No matching distribution found for broken") {
		t.Errorf("error does not name host, step and pip's output: %v", err)
	}
	for _, h := range r.hosts {
		if got, want := r.current(h.Name), "releases/"+first.ReleaseName; got != want {
			t.Errorf("%s: current -> %q, want the old %q", h.Name, got, want)
		}
		if got := r.releases(h.Name); len(got) != 1 {
			t.Errorf("%s: releases %v, want only the first one", h.Name, got)
		}
	}
	// The hosts after the failing one ran their prepare command only
	// (started on every host at once), which stopped before their lock.
	if r.dialer.commandsOn("web2") != before2+1 || r.dialer.commandsOn("web3") != before3+1 {
		t.Errorf("commands ran on the hosts after the failing one: %d and %d, want their prepare command only",
			r.dialer.commandsOn("web2")-before2, r.dialer.commandsOn("web3")-before3)
	}
}

func TestRestartFailureRevertsTheHost(t *testing.T) {
	r := newRig(t, 2)
	r.commit("flask")
	first, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	r.commit("flask==2")
	r.d.RestartCmd = `if grep -q 'flask==2' requirements.txt; then echo "apache: config error" >&2; exit 4; fi; echo "restarted $COMMIT" >> "$HOME/restarts"`
	_, err = r.deploy()
	var se *StepError
	if !errors.As(err, &se) || se.Step != "restart" || !strings.Contains(err.Error(), "apache: config error") {
		t.Fatalf("got %v, want a restart StepError with its output", err)
	}
	if got, want := r.current("web1"), "releases/"+first.ReleaseName; got != want {
		t.Errorf("current -> %q, want it back on %q", got, want)
	}
	if got := r.releases("web1"); len(got) != 1 {
		t.Errorf("releases %v: the failed one must be gone", got)
	}
	restarts, _ := os.ReadFile(filepath.Join(r.dialer.homes["web1"], "restarts"))
	if !strings.Contains(string(restarts), "restarted "+r.commits[0]) {
		t.Errorf("previous release not restarted: %q", restarts)
	}
	log, _ := os.ReadFile(filepath.Join(r.dialer.homes["web1"], "app", "revisions.log"))
	if lines := strings.Split(strings.TrimSpace(string(log)), "\n"); len(lines) != 3 || !strings.Contains(lines[2], " rollback "+first.ReleaseName+" "+r.commits[0]) {
		t.Errorf("revisions.log:\n%s", log)
	}
	if r.current("web2") != "releases/"+first.ReleaseName {
		t.Errorf("web2 was touched")
	}
}

func TestDeployWaitsForTheHostLock(t *testing.T) {
	r := newRig(t, 1)
	r.commit("flask")
	root := filepath.Join(r.dialer.homes["web1"], "app")
	r.must(os.MkdirAll(root, 0o755))
	r.must(os.WriteFile(filepath.Join(root, ".pushdeploy.lock"), []byte("deployment other since then\n"), 0o644))
	release := deploytest.HoldLock(t, filepath.Join(root, ".pushdeploy.lock"))

	_, err := r.deploy()
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "host busy: locked by deployment other since then; gave up after") {
		t.Fatalf("got %v, want ErrBusy naming the holder", err)
	}
	if r.current("web1") != "" || len(r.releases("web1")) != 0 {
		t.Errorf("a busy host was changed")
	}
	release()
	before := time.Now().UTC().Truncate(time.Second)
	dep, err := r.deploy()
	if err != nil {
		t.Fatalf("after the lock is freed: %v", err)
	}
	// The lock file names the last holder and when it got the lock, for
	// the next deployer's "host busy" message.
	b, _ := os.ReadFile(filepath.Join(root, ".pushdeploy.lock"))
	var id, since string
	if _, err := fmt.Sscanf(string(b), "deployment %s since %s", &id, &since); err != nil || id != dep.ID {
		t.Fatalf("lock file %q: %v", b, err)
	}
	if at, err := time.Parse(time.RFC3339, since); err != nil || at.Before(before) {
		t.Errorf("lock file says since %q, want the time the lock was taken (not before %s)", since, before.Format(time.RFC3339))
	}
}

func TestPrepareRemovesLeftoversOfAnInterruptedDeploy(t *testing.T) {
	r := newRig(t, 1)
	r.commit("flask")
	stale := filepath.Join(r.dialer.homes["web1"], "app", "releases", "20200101000000-abcdef0")
	r.must(os.MkdirAll(filepath.Join(stale, "venv"), 0o755))
	other := filepath.Join(r.dialer.homes["web1"], "app", "releases", "not-a-release")
	r.must(os.MkdirAll(other, 0o755))
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("incomplete release left: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a folder that is not a release was touched: %v", err)
	}
}

func TestResolveFailureRunsNothing(t *testing.T) {
	r := newRig(t, 2)
	r.d.Resolver = fakeResolver{err: errors.New("branch release not found")}
	dep, err := deployNow(r.d, r.hosts, Push{Branch: "release"})
	if err == nil || !strings.Contains(err.Error(), "branch release not found") || dep.Status != StatusFailed {
		t.Fatalf("got %v", err)
	}
	// The hosts are logged into while the commit is resolved (a login
	// changes nothing), but no command runs on any.
	ran := func() (n int) {
		for _, h := range r.hosts {
			n += r.dialer.commandsOn(h.Name)
		}
		return n
	}
	if n := ran(); n != 0 {
		t.Errorf("%d commands ran on the hosts", n)
	}
	// A resolver that returns something that is not a hash is not believed.
	r.d.Resolver = fakeResolver{rel: Release{RepoURL: r.repo, Branch: "release", Commit: "$(touch /tmp/x)"}}
	if _, err := deployNow(r.d, r.hosts, Push{Branch: "release"}); err == nil || ran() != 0 {
		t.Fatalf("bad commit from resolver: err %v, %d commands ran", err, ran())
	}
}

func TestUnreachableHostStopsBeforeAnyChange(t *testing.T) {
	r := newRig(t, 3)
	r.commit("flask")
	r.dialer.err = map[string]error{"web3": errors.New("host key of web3 is unknown")}
	_, err := r.deploy()
	var se *StepError
	if !errors.As(err, &se) || se.Host != "web3" || se.Step != "connect" {
		t.Fatalf("got %v, want a connect error on web3", err)
	}
	for _, h := range r.hosts {
		if r.dialer.commandsOn(h.Name) != 0 {
			t.Errorf("%s: commands ran although web3 could not be reached", h.Name)
		}
	}
}

func TestStepErrorMessage(t *testing.T) {
	e := &StepError{Host: "web2", Step: "clone", Err: errors.New("exit status 128"), Output: "fatal: repository not found\n"}
	want := "host web2: clone: exit status 128\n    fatal: repository not found"
	if e.Error() != want {
		t.Errorf("got %q, want %q", e.Error(), want)
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	tb := newTail(16)
	for i := 0; i < 10; i++ {
		_, _ = tb.Write([]byte("line " + itoa(i) + "\n"))
	}
	if got := tb.String(); got != "…\nline 8\nline 9" {
		t.Errorf("got %q", got)
	}
}
