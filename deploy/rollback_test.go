package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/internal/deploytest"
)

// deployN deploys n commits and returns their deployments, oldest first.
func (r *rig) deployN(n int) []*Deployment {
	r.t.Helper()
	var deps []*Deployment
	for i := 1; i <= n; i++ {
		r.commit("flask==" + itoa(i))
		dep, err := r.deploy()
		if err != nil {
			r.t.Fatalf("deploy %d: %v", i, err)
		}
		deps = append(deps, dep)
	}
	return deps
}

func (r *rig) rollback(to string) (*Deployment, error) {
	r.t.Helper()
	dep := NewDeployment(Request{Action: "rollback", Trigger: "cli", Release: to}, time.Now())
	err := r.d.Rollback(context.Background(), dep, r.hosts)
	return dep, err
}

func (r *rig) file(host, rel string) string {
	data, _ := os.ReadFile(filepath.Join(r.dialer.homes[host], rel))
	return string(data)
}

func (r *rig) lastLogLine(host string) []string {
	lines := strings.Split(strings.TrimSpace(r.file(host, "app/revisions.log")), "\n")
	return strings.Fields(lines[len(lines)-1])
}

func stepNames(h *HostResult) string {
	var names []string
	for _, s := range h.Steps {
		names = append(names, string(s.Name))
	}
	return strings.Join(names, " ")
}

func TestRollbackGoesToThePreviousRelease(t *testing.T) {
	r := newRig(t, 2)
	deps := r.deployN(3)

	dep, err := r.rollback("")
	if err != nil {
		t.Fatal(err)
	}
	want := deps[1]
	if dep.Status != StatusSucceeded || dep.Action != "rollback" || dep.ReleaseName != want.ReleaseName || dep.Release.Commit != r.commits[1] {
		t.Errorf("deployment %s %s %s %s, want succeeded rollback to %s %s", dep.Status, dep.Action, dep.ReleaseName, dep.Release.Commit, want.ReleaseName, r.commits[1])
	}
	for _, h := range r.hosts {
		if got := r.current(h.Name); got != "releases/"+want.ReleaseName {
			t.Errorf("%s: current -> %q, want %s", h.Name, got, want.ReleaseName)
		}
		if f := r.lastLogLine(h.Name); len(f) != 5 || f[1] != "rollback" || f[2] != want.ReleaseName || f[3] != r.commits[1] || f[4] != dep.ID {
			t.Errorf("%s: revisions.log ends with %q", h.Name, f)
		}
		env := r.file(h.Name, "restart.env")
		relDir := filepath.Join(r.dialer.homes[h.Name], "app", "releases", want.ReleaseName)
		for _, w := range []string{"COMMIT=" + r.commits[1], "RELEASE_DIR=" + relDir, "DEPLOYMENT_ID=" + dep.ID, "BRANCH=release", "\n" + relDir} {
			if !strings.Contains(env, w+"\n") {
				t.Errorf("%s: restart env lacks %q:\n%s", h.Name, w, env)
			}
		}
		// Nothing was removed or rewritten: the newer release stays.
		if got := r.releases(h.Name); len(got) != 3 {
			t.Errorf("%s: releases %v", h.Name, got)
		}
		rev := r.file(h.Name, "app/releases/"+want.ReleaseName+"/REVISION")
		if strings.TrimSpace(rev) != r.commits[1] {
			t.Errorf("%s: REVISION of the target is %q", h.Name, rev)
		}
	}
	if got := stepNames(dep.Hosts[0]); got != "connect lock verify switch restart" {
		t.Errorf("steps %q", got)
	}
	if !strings.Contains(dep.Hosts[0].Steps[2].Output, deps[2].ReleaseName+" -> "+want.ReleaseName) {
		t.Errorf("verify output %q does not say where the host goes", dep.Hosts[0].Steps[2].Output)
	}

	// Again: the release before the new current, the first one.
	if _, err := r.rollback(""); err != nil {
		t.Fatal(err)
	}
	for _, h := range r.hosts {
		if got := r.current(h.Name); got != "releases/"+deps[0].ReleaseName {
			t.Errorf("%s: second rollback: current -> %q, want %s", h.Name, got, deps[0].ReleaseName)
		}
	}
	// And nothing is before the first.
	_, err = r.rollback("")
	var te *TargetError
	if !errors.As(err, &te) || len(te.Hosts) != 2 || !strings.Contains(err.Error(), "no release before current") {
		t.Errorf("rollback past the first release: %v", err)
	}
}

func TestRollbackToARelease(t *testing.T) {
	r := newRig(t, 2)
	deps := r.deployN(3)
	dep, err := r.rollback(deps[0].ReleaseName)
	if err != nil {
		t.Fatal(err)
	}
	if dep.ReleaseName != deps[0].ReleaseName || dep.Release.Commit != r.commits[0] {
		t.Errorf("deployment names %s %s", dep.ReleaseName, dep.Release.Commit)
	}
	for _, h := range r.hosts {
		if got := r.current(h.Name); got != "releases/"+deps[0].ReleaseName {
			t.Errorf("%s: current -> %q", h.Name, got)
		}
		if !strings.Contains(r.file(h.Name, "restart.env"), "COMMIT="+r.commits[0]+"\n") {
			t.Errorf("%s: restart did not get the first commit", h.Name)
		}
	}
	// --to also goes forward again.
	if _, err := r.rollback(deps[2].ReleaseName); err != nil {
		t.Fatal(err)
	}
	if got := r.current("web2"); got != "releases/"+deps[2].ReleaseName {
		t.Errorf("forward: current -> %q", got)
	}
	// A host already on the target is left alone (no switch, no restart).
	logBefore := r.file("web1", "app/revisions.log")
	dep, err = r.rollback(deps[2].ReleaseName)
	if err != nil || r.file("web1", "app/revisions.log") != logBefore || stepNames(dep.Hosts[0]) != "connect lock verify" {
		t.Errorf("rollback to current: %v, steps %q", err, stepNames(dep.Hosts[0]))
	}
}

func TestRollbackChangesNothingWhenAHostLacksTheTarget(t *testing.T) {
	r := newRig(t, 3)
	deps := r.deployN(3)
	target := deps[1].ReleaseName
	r.must(os.Remove(filepath.Join(r.dialer.homes["web2"], "app", "releases", target, "REVISION")))
	r.must(os.RemoveAll(filepath.Join(r.dialer.homes["web3"], "app", "releases", target)))
	logs := map[string]string{}
	for _, h := range r.hosts {
		logs[h.Name] = r.file(h.Name, "app/revisions.log")
	}

	check := func(to string, wants ...string) {
		t.Helper()
		dep, err := r.rollback(to)
		var te *TargetError
		if !errors.As(err, &te) {
			t.Fatalf("--to %q: got %v, want a *TargetError", to, err)
		}
		for _, want := range wants {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("--to %q: error lacks %q:\n%v", to, want, err)
			}
		}
		if strings.Contains(err.Error(), "host web1:") {
			t.Errorf("web1 is fine but named:\n%v", err)
		}
		if dep.Status != StatusFailed || dep.Hosts[0].Status != StatusSkipped || dep.Hosts[2].Status != StatusFailed {
			t.Errorf("statuses %s %s %s", dep.Status, dep.Hosts[0].Status, dep.Hosts[2].Status)
		}
		for _, h := range r.hosts {
			if got := r.current(h.Name); got != "releases/"+deps[2].ReleaseName {
				t.Errorf("%s: switched to %q although the rollback was refused", h.Name, got)
			}
			if r.file(h.Name, "app/revisions.log") != logs[h.Name] {
				t.Errorf("%s: revisions.log changed", h.Name)
			}
		}
	}
	check(target, "no host was changed", "2 of 3 host(s) (web2, web3)",
		"host web2: verify: release "+target+" is incomplete on this host (missing REVISION)",
		"host web3: verify: release "+target+" does not exist")

	// Without --to web2 would go to the first release (its second is
	// incomplete); web3 has nothing complete before current.
	r.must(os.Remove(filepath.Join(r.dialer.homes["web3"], "app", "releases", deps[0].ReleaseName, "REVISION")))
	check("", "the release before current is not usable on 1 of 3 host(s) (web3)",
		"host web3: verify: no complete release before current "+deps[2].ReleaseName,
		deps[0].ReleaseName+" lacks REVISION")
}

func TestRollbackDefaultWhenHostsDisagree(t *testing.T) {
	r := newRig(t, 2)
	deps := r.deployN(3)
	// web2 alone went back one release (a rollback of that host only).
	link := filepath.Join(r.dialer.homes["web2"], "app", "current")
	r.must(os.Remove(link))
	r.must(os.Symlink("releases/"+deps[1].ReleaseName, link))
	dep, err := r.rollback("")
	if err != nil {
		t.Fatal(err)
	}
	// Each host goes to the release before its own current.
	if r.current("web1") != "releases/"+deps[1].ReleaseName || r.current("web2") != "releases/"+deps[0].ReleaseName {
		t.Errorf("current %s, %s", r.current("web1"), r.current("web2"))
	}
	if dep.ReleaseName != "" || dep.Release.Commit != "" {
		t.Errorf("hosts went to different releases, yet the deployment names %q %q", dep.ReleaseName, dep.Release.Commit)
	}
}

// The release before current lacks its venv on one host: a plain rollback
// does not skip to an older release there (the pool would end up on two
// releases); it changes nothing and names the host and what to do.
func TestRollbackRefusesAnIncompletePrevious(t *testing.T) {
	r := newRig(t, 2)
	deps := r.deployN(3)
	r.must(os.RemoveAll(filepath.Join(r.dialer.homes["web2"], "app", "releases", deps[1].ReleaseName, "venv")))
	_, err := r.rollback("")
	var te *TargetError
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want a *TargetError", err)
	}
	for _, want := range []string{"no host was changed", "(web2)", "host web2: verify: release " + deps[1].ReleaseName + ", the one before current " + deps[2].ReleaseName + ", is incomplete on this host (missing venv)", "--to"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, h := range []string{"web1", "web2"} {
		if r.current(h) != "releases/"+deps[2].ReleaseName {
			t.Errorf("%s: current %s, want it unchanged", h, r.current(h))
		}
	}
}

func TestRollbackRefusesHostileReleaseNames(t *testing.T) {
	r := newRig(t, 1)
	for _, to := range []string{"../x", "a/b", "$(id)", "20261125183400-1a2b3c4/../../x", "20261125183400-1A2B3C4", "-rf"} {
		dep, err := r.rollback(to)
		var re *RequestError
		if !errors.As(err, &re) || dep.Status != StatusFailed {
			t.Errorf("%q: got %v, want a *RequestError", to, err)
		}
		if _, err := r.d.PlanRollback(context.Background(), r.hosts, to); !errors.As(err, &re) {
			t.Errorf("plan %q: got %v", to, err)
		}
	}
	if len(r.dialer.dialed) != 0 {
		t.Errorf("dialed %v for hostile names", r.dialer.dialed)
	}
}

func TestRollbackWaitsForTheHostLock(t *testing.T) {
	r := newRig(t, 2)
	deps := r.deployN(2)
	root := filepath.Join(r.dialer.homes["web2"], "app")
	r.must(os.WriteFile(filepath.Join(root, ".pushdeploy.lock"), []byte("deployment other-42 since 2026-01-01T00:00:00Z\n"), 0o644))
	release := deploytest.HoldLock(t, filepath.Join(root, ".pushdeploy.lock"))

	_, err := r.rollback("")
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "host busy") || !strings.Contains(err.Error(), "locked by deployment other-42 since 2026-01-01T00:00:00Z") {
		t.Fatalf("got %v, want ErrBusy naming the holder", err)
	}
	// web1 was locked first, but nothing changed anywhere.
	for _, h := range r.hosts {
		if got := r.current(h.Name); got != "releases/"+deps[1].ReleaseName {
			t.Errorf("%s: current -> %q", h.Name, got)
		}
	}
	release()
	if _, err := r.rollback(""); err != nil {
		t.Fatalf("after the lock is freed: %v", err)
	}
	if got := r.current("web2"); got != "releases/"+deps[0].ReleaseName {
		t.Errorf("current -> %q", got)
	}
}

func TestRollbackRestartFailurePutsTheHostBack(t *testing.T) {
	r := newRig(t, 2)
	deps := r.deployN(2)
	r.d.RestartCmd = `echo "restart $COMMIT" >> "$HOME/restarts"; if grep -q 'flask==1' requirements.txt; then echo "apache: config error" >&2; exit 4; fi`
	_, err := r.rollback("")
	var se *StepError
	if !errors.As(err, &se) || se.Host != "web1" || se.Step != "restart" || !strings.Contains(err.Error(), "apache: config error") {
		t.Fatalf("got %v, want web1's restart error", err)
	}
	if got := r.current("web1"); got != "releases/"+deps[1].ReleaseName {
		t.Errorf("web1: current -> %q, want it back on %s", got, deps[1].ReleaseName)
	}
	if got, want := r.file("web1", "restarts"), "restart "+r.commits[0]+"\nrestart "+r.commits[1]+"\n"; got != want {
		t.Errorf("restarts %q, want %q", got, want)
	}
	if f := r.lastLogLine("web1"); f[1] != "rollback" || f[2] != deps[1].ReleaseName || f[3] != r.commits[1] {
		t.Errorf("revisions.log ends with %q", f)
	}
	if r.current("web2") != "releases/"+deps[1].ReleaseName || r.file("web2", "restarts") != "" {
		t.Errorf("web2 was touched")
	}
}

func TestRollbackHealthFailurePutsHostsBack(t *testing.T) {
	for _, all := range []bool{false, true} {
		r := newRig(t, 3)
		deps := r.deployN(2)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == "/web2" {
				http.Error(w, "db down", http.StatusServiceUnavailable)
			}
		}))
		r.d.HealthURL, r.d.HealthTimeout, r.d.RollbackAll = srv.URL+"/{host}", 600*time.Millisecond, all
		dep, err := r.rollback("")
		srv.Close()
		var se *StepError
		if !errors.As(err, &se) || se.Host != "web2" || se.Step != "health" {
			t.Fatalf("all=%v: got %v, want web2's health error", all, err)
		}
		web1 := deps[0].ReleaseName
		if all {
			web1 = deps[1].ReleaseName
		}
		for host, want := range map[string]string{"web1": web1, "web2": deps[1].ReleaseName, "web3": deps[1].ReleaseName} {
			if got := r.current(host); got != "releases/"+want {
				t.Errorf("all=%v: %s: current -> %q, want %s", all, host, got, want)
			}
		}
		if got := stepNames(dep.Hosts[1]); got != "connect lock verify switch restart health revert restart-previous" {
			t.Errorf("all=%v: web2 steps %q", all, got)
		}
		wantWeb1 := StatusSucceeded
		if all {
			wantWeb1 = StatusRolledBack
		}
		if dep.Hosts[0].Status != wantWeb1 || dep.Hosts[1].Status != StatusFailed || dep.Hosts[2].Status != StatusSkipped {
			t.Errorf("all=%v: statuses %s %s %s", all, dep.Hosts[0].Status, dep.Hosts[1].Status, dep.Hosts[2].Status)
		}
	}
}

// tree is a fingerprint of everything under dir: names, types, modes,
// sizes, modification times, symlink targets and file contents.
func tree(t *testing.T, dir string) string {
	t.Helper()
	return homeState(t, dir)
}

func TestPlanRollbackChangesNothing(t *testing.T) {
	r := newRig(t, 2)
	deps := r.deployN(2)
	r.must(os.Remove(filepath.Join(r.dialer.homes["web2"], "app", ".pushdeploy.lock")))
	before := map[string]string{}
	for _, h := range r.hosts {
		before[h.Name] = tree(t, r.dialer.homes[h.Name])
	}
	targets, err := r.d.PlanRollback(context.Background(), r.hosts, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, tg := range targets {
		if !cmp.Equal(tg.Host, r.hosts[i]) || tg.From.Name != deps[1].ReleaseName || tg.To.Name != deps[0].ReleaseName || tg.To.Commit != r.commits[0] {
			t.Errorf("target %d: %+v", i, tg)
		}
	}
	_, err = r.d.PlanRollback(context.Background(), r.hosts, "20200101000000-abcdef0")
	var te *TargetError
	if !errors.As(err, &te) || len(te.Hosts) != 2 || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("plan to a missing release: %v", err)
	}
	for _, h := range r.hosts {
		if after := tree(t, r.dialer.homes[h.Name]); after != before[h.Name] {
			t.Errorf("%s changed by a dry run:\nbefore:\n%s\nafter:\n%s", h.Name, before[h.Name], after)
		}
	}
	if _, err := os.Stat(filepath.Join(r.dialer.homes["web2"], "app", ".pushdeploy.lock")); !os.IsNotExist(err) {
		t.Errorf("a dry run made the lock file: %v", err)
	}
	if got := r.d.RollbackSteps(); !slices.Equal(got, []Step{StepSwitch, StepRestart}) {
		t.Errorf("steps %v", got)
	}
}

func TestRollbackWithoutCurrent(t *testing.T) {
	r := newRig(t, 1)
	_, err := r.rollback("")
	var te *TargetError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "no current release") {
		t.Errorf("got %v", err)
	}
}

func TestWorkerRunsRollbacks(t *testing.T) {
	r := newRig(t, 2)
	deps := r.deployN(2)
	w := &Worker{Deployer: r.d, Hosts: r.hosts}
	// The queued deploys run within a second: give them their own clock
	// (release names have a one-second resolution).
	clock := time.Now().Add(time.Hour)
	var mu sync.Mutex
	r.d.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Minute)
		return clock
	}

	if _, err := w.Submit(context.Background(), Request{Action: "rollback", Trigger: "api", Release: "../x"}); err == nil {
		t.Error("hostile release accepted")
	}
	if _, err := w.Submit(context.Background(), Request{Action: "undo", Trigger: "api"}); err == nil {
		t.Error("unknown action accepted")
	}
	// Queued before the worker runs: a deploy, two rollbacks, a deploy.
	// Nothing coalesces across kinds, and rollbacks never coalesce.
	d1, _ := w.Submit(context.Background(), Request{Trigger: "cli", Push: Push{Branch: "release"}})
	rb1, err := w.Submit(context.Background(), Request{Action: "rollback", Trigger: "api", Release: deps[0].ReleaseName})
	if err != nil || rb1.Status != "queued" || rb1.ID == d1.ID {
		t.Fatalf("rollback: %+v, %v", rb1, err)
	}
	rb2, _ := w.Submit(context.Background(), Request{Action: "rollback", Trigger: "api", Release: deps[0].ReleaseName})
	d2, _ := w.Submit(context.Background(), Request{Trigger: "cli", Push: Push{Branch: "release"}})
	if rb2.ID == rb1.ID || d2.ID == d1.ID || d2.Status != "queued" {
		// d2 must run after the rollbacks, not join d1 before them.
		t.Errorf("coalesced: %+v %+v %+v %+v", d1, rb1, rb2, d2)
	}
	if d3, _ := w.Submit(context.Background(), Request{Trigger: "cli", Push: Push{Branch: "release"}}); d3.ID != d2.ID || d3.Status != "coalesced" {
		t.Errorf("a deploy after d2 did not join it: %+v", d3)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "the queue to drain", func() bool {
		d, _ := w.Get(d2.ID)
		return d.Status == StatusSucceeded || d.Status == StatusFailed
	})
	cancel()
	<-done
	got, _ := w.Get(rb1.ID)
	if got.Status != StatusSucceeded || got.Action != "rollback" || got.ReleaseName != deps[0].ReleaseName || stepNames(got.Hosts[0]) != "connect lock verify switch restart" {
		t.Errorf("rollback deployment: %s %s %s %v", got.Status, got.Action, got.ReleaseName, got.Err)
	}
	// The log shows the rollback between the deploys.
	var actions []string
	for _, l := range strings.Split(strings.TrimSpace(r.file("web1", "app/revisions.log")), "\n") {
		actions = append(actions, strings.Fields(l)[1])
	}
	if got := strings.Join(actions, " "); got != "deploy deploy deploy rollback deploy" {
		t.Errorf("revisions.log actions %q (rb2 is already on its target)", got)
	}

	hs, err := w.Releases(context.Background())
	if err != nil || len(hs) != 2 || len(hs[0].Releases) != 4 || Disagree(hs) {
		t.Errorf("releases: %+v, %v", hs, err)
	}
}

// barrierDialer wraps the rig's dialer: each host's lock command waits
// until every host's has started (or a deadline passes, which fails the
// test), so a rollback that locked one host after another could not get
// past its first host in time. It can also run a hook before a host's
// rollback.sh reads its first word.
type barrierDialer struct {
	Dialer
	t       *testing.T
	n       int
	mu      sync.Mutex
	started int
	all     chan struct{}
	before  map[string]func() // host name -> run before its rollback.sh reads its first word
}

func newBarrierDialer(t *testing.T, d Dialer, n int) *barrierDialer {
	return &barrierDialer{Dialer: d, t: t, n: n, all: make(chan struct{}), before: map[string]func(){}}
}

func (d *barrierDialer) Dial(ctx context.Context, h Host) (Conn, error) {
	c, err := d.Dialer.Dial(ctx, h)
	if err != nil {
		return nil, err
	}
	return barrierConn{Conn: c, host: h.Name, d: d}, nil
}

type barrierConn struct {
	Conn
	host string
	d    *barrierDialer
}

func (c barrierConn) Run(ctx context.Context, cmd Command) error {
	switch {
	case len(cmd.Args) > 2 && cmd.Args[2] == lockScript:
		c.d.mu.Lock()
		if c.d.started++; c.d.started == c.d.n {
			close(c.d.all)
		}
		c.d.mu.Unlock()
		select {
		case <-c.d.all:
		case <-time.After(10 * time.Second):
			c.d.t.Errorf("%s: the lock commands of all %d hosts did not start at once", c.host, c.d.n)
		}
	case len(cmd.Args) > 2 && cmd.Args[2] == rollbackScript:
		if f := c.d.before[c.host]; f != nil && cmd.Stdin != nil {
			cmd.Stdin = &firstWordHook{r: cmd.Stdin, f: f}
		}
	}
	return c.Conn.Run(ctx, cmd)
}

// firstWordHook runs f once, when rollback.sh's first word (which names
// the target, and is said only after every host's check) is read, before
// the script gets it.
type firstWordHook struct {
	r    io.Reader
	f    func()
	once sync.Once
}

func (h *firstWordHook) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		h.once.Do(h.f)
	}
	return n, err
}

// TestRollbackLocksAndChecksEveryHostAtOnce: the hosts are locked and
// checked at the same time, each with one remote command, and each moves
// with one more (switch and restart together); the host locks are held
// from the checks to the switches, and every check has ended before the
// first switch.
func TestRollbackLocksAndChecksEveryHostAtOnce(t *testing.T) {
	r := newRig(t, 4)
	deps := r.deployN(2)
	// web1's restart, the first, tells whether each host's lock is free.
	probe := ""
	for _, h := range r.hosts {
		probe += fmt.Sprintf(`if flock -n %s true; then echo "%s free"; else echo "%s held"; fi >> %s; `,
			Quote(filepath.Join(r.dialer.homes[h.Name], "app", ".pushdeploy.lock")), h.Name, h.Name, Quote(filepath.Join(r.dir, "locks")))
	}
	r.d.RestartCmd = `if [ "${HOME##*/}" = web1 ]; then ` + probe + `fi; ` + r.d.RestartCmd
	r.d.Dialer = newBarrierDialer(t, r.dialer, len(r.hosts))
	before := map[string]int{}
	for _, h := range r.hosts {
		before[h.Name] = r.dialer.commandsOn(h.Name)
	}

	dep, err := r.rollback("")
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range r.hosts {
		if got := r.current(h.Name); got != "releases/"+deps[0].ReleaseName {
			t.Errorf("%s: current -> %q", h.Name, got)
		}
		if got := r.dialer.commandsOn(h.Name) - before[h.Name]; got != 2 {
			t.Errorf("%s: %d remote commands, want 2 (lock and check, switch and restart)", h.Name, got)
		}
		if got := stepNames(dep.Hosts[i]); got != "connect lock verify switch restart" {
			t.Errorf("%s: steps %q", h.Name, got)
		}
		if env := r.file(h.Name, "restart.env"); !strings.Contains(env, "COMMIT="+r.commits[0]+"\n") {
			t.Errorf("%s: restart env %q", h.Name, env)
		}
	}
	if got, want := readFile(t, filepath.Join(r.dir, "locks")), "web1 held\nweb2 held\nweb3 held\nweb4 held\n"; got != want {
		t.Errorf("during web1's restart the locks were:\n%s\nwant every one held", got)
	}
	var lastCheck, firstSwitch time.Time
	for _, h := range dep.Hosts {
		for _, s := range h.Steps {
			if end := s.Started.Add(s.Duration); s.Name == StepVerify && end.After(lastCheck) {
				lastCheck = end
			}
			if s.Name == StepSwitch && (firstSwitch.IsZero() || s.Started.Before(firstSwitch)) {
				firstSwitch = s.Started
			}
		}
	}
	if firstSwitch.Before(lastCheck) {
		t.Errorf("a host switched at %s, before the last check ended at %s", firstSwitch, lastCheck)
	}
}

// TestRollbackFailingCheckOnTheLastHostSwitchesNone: the last host lacks
// the target; the hosts before it, checked and waiting for their switch,
// never switch or restart, and their waiting commands end with the
// rollback.
func TestRollbackFailingCheckOnTheLastHostSwitchesNone(t *testing.T) {
	r := newRig(t, 3)
	deps := r.deployN(2)
	r.d.RestartCmd = `echo restarted >> "$HOME/restarts"`
	r.must(os.RemoveAll(filepath.Join(r.dialer.homes["web3"], "app", "releases", deps[0].ReleaseName, "venv")))
	logs := map[string]string{}
	for _, h := range r.hosts {
		logs[h.Name] = r.file(h.Name, "app/revisions.log")
	}
	dep, err := r.rollback("")
	var te *TargetError
	if !errors.As(err, &te) || len(te.Hosts) != 1 || te.Hosts[0].Host.Name != "web3" {
		t.Fatalf("got %v, want a *TargetError naming web3", err)
	}
	for i, h := range r.hosts {
		if got := r.current(h.Name); got != "releases/"+deps[1].ReleaseName {
			t.Errorf("%s: current -> %q although web3 failed its check", h.Name, got)
		}
		if r.file(h.Name, "app/revisions.log") != logs[h.Name] || r.file(h.Name, "restarts") != "" {
			t.Errorf("%s: switched or restarted although web3 failed its check", h.Name)
		}
		want := StatusSkipped
		if h.Name == "web3" {
			want = StatusFailed
		}
		if dep.Hosts[i].Status != want {
			t.Errorf("%s: status %s, want %s", h.Name, dep.Hosts[i].Status, want)
		}
	}
	// Nothing of the rollback runs on: the next one takes every lock at
	// once (and leaves every host where it is).
	r.d.Dialer = newBarrierDialer(t, r.dialer, len(r.hosts))
	if _, err := r.rollback(deps[1].ReleaseName); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackRestartsInBatches: with DEPLOY_RESTART_BATCH=2 the hosts of
// a batch restart at the same time and batches one after another; a batch
// whose host fails its health check goes back as a whole (with
// RollbackAll, so do the batches before it), and the hosts after it are
// not touched.
func TestRollbackRestartsInBatches(t *testing.T) {
	for _, all := range []bool{false, true} {
		r := newRig(t, 5)
		deps := r.deployN(2)
		r.d.RestartBatch = RestartBatch{N: 2}
		// Each restart of the rollback's target says it started, waits
		// (up to 10s) until the number of starts is even, i.e. its
		// batch-mate started too, and says it ended. A restart without a
		// mate (hosts restarted one by one) waits out the 10s. Restarts
		// of the release before (putting hosts back) just run.
		log := Quote(filepath.Join(r.dir, "restarts"))
		r.d.RestartCmd = `[ "$COMMIT" = ` + r.commits[0] + ` ] || exit 0; h=${HOME##*/}; echo "start $h" >> ` + log + `; i=0; ` +
			`while [ $(($(grep -c start ` + log + `) % 2)) = 1 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; echo "end $h" >> ` + log
		r.d.HealthURL, r.d.HTTPClient, r.d.RollbackAll = "http://{host}:8000/health", &http.Client{Transport: healthByHost{sick: map[string]bool{"web3": true}}}, all
		r.d.HealthTimeout = 300 * time.Millisecond
		dep, err := r.rollback("")
		var se *StepError
		if !errors.As(err, &se) || se.Host != "web3" || se.Step != StepHealth {
			t.Fatalf("all=%v: got %v, want web3's health check", all, err)
		}
		lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(r.dir, "restarts"))), "\n")
		if len(lines) < 8 || !isPair(lines[0:2], "start", "web1", "web2") || !isPair(lines[2:4], "end", "web1", "web2") ||
			!isPair(lines[4:6], "start", "web3", "web4") || !isPair(lines[6:8], "end", "web3", "web4") {
			t.Errorf("all=%v: restarts, in order:\n%s", all, strings.Join(lines, "\n"))
		}
		want := map[string]string{"web1": deps[0].ReleaseName, "web2": deps[0].ReleaseName, "web3": deps[1].ReleaseName, "web4": deps[1].ReleaseName, "web5": deps[1].ReleaseName}
		status := map[string]Status{"web1": StatusSucceeded, "web2": StatusSucceeded, "web3": StatusFailed, "web4": StatusRolledBack, "web5": StatusSkipped}
		if all {
			want["web1"], want["web2"] = deps[1].ReleaseName, deps[1].ReleaseName
			status["web1"], status["web2"] = StatusRolledBack, StatusRolledBack
		}
		for i, h := range r.hosts {
			if got := r.current(h.Name); got != "releases/"+want[h.Name] {
				t.Errorf("all=%v: %s: current -> %q, want %s", all, h.Name, got, want[h.Name])
			}
			if dep.Hosts[i].Status != status[h.Name] {
				t.Errorf("all=%v: %s: status %s, want %s", all, h.Name, dep.Hosts[i].Status, status[h.Name])
			}
		}
		if got := stepNames(dep.Hosts[3]); got != "connect lock verify switch restart health revert restart-previous" {
			t.Errorf("all=%v: web4 steps %q", all, got)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
	}
	return string(data)
}

// isPair reports whether lines are "what a" and "what b", in either order.
func isPair(lines []string, what, a, b string) bool {
	got := slices.Sorted(slices.Values(lines))
	return slices.Equal(got, []string{what + " " + a, what + " " + b})
}

// TestRollbackQueuesBehindABusyHost: web2 is locked by another deployer.
// The rollback keeps web1, gives web3 back, waits for web2 and then takes
// web3 again, as a deploy takes them: in hosts-file order.
func TestRollbackQueuesBehindABusyHost(t *testing.T) {
	r := newRig(t, 3)
	deps := r.deployN(2)
	r.d.LockTimeout = 20 * time.Second
	release := deploytest.HoldLock(t, filepath.Join(r.dialer.homes["web2"], "app", ".pushdeploy.lock"))
	defer release()
	dep := NewDeployment(Request{Action: "rollback", Trigger: "cli"}, time.Now())
	done := make(chan error, 1)
	go func() { done <- r.d.Rollback(context.Background(), dep, r.hosts) }()
	waitFor(t, "the rollback to wait for web2's lock in order", func() bool {
		s := dep.Snapshot()
		if len(s.Hosts) < 2 {
			return false
		}
		steps := s.Hosts[1].Steps
		return len(steps) == 3 && steps[2].Name == StepLock && steps[2].Status == StatusRunning
	})
	if got := stepNames(dep.Snapshot().Hosts[2]); got != "connect lock verify" {
		t.Errorf("web3 steps while waiting for web2: %q", got)
	}
	if err := exec.Command("flock", "-n", filepath.Join(r.dialer.homes["web3"], "app", ".pushdeploy.lock"), "true").Run(); err != nil {
		t.Errorf("web3's lock is held while the rollback waits for web2: %v", err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, h := range r.hosts {
		if got := r.current(h.Name); got != "releases/"+deps[0].ReleaseName {
			t.Errorf("%s: current -> %q", h.Name, got)
		}
	}
	for i, want := range []string{"connect lock verify switch restart", "connect lock lock verify switch restart", "connect lock verify lock verify switch restart"} {
		if got := stepNames(dep.Hosts[i]); got != want {
			t.Errorf("%s: steps %q, want %q", r.hosts[i].Name, got, want)
		}
	}
}

// TestStepRelay: output before the marker goes to the first step, after it
// to the second, also when the marker arrives in parts; output while no
// step has taken it is held for the next.
func TestStepRelay(t *testing.T) {
	for _, cut := range []int{1, 2, 3, 7, 1000} {
		s := newStepRelay(restartMarker)
		var first, second strings.Builder
		in := "early\nprev\n" + restartMarker + "restarting\npartial"
		s.Write([]byte(in[:6])) // before any step
		s.to(&first)
		for i := 6; i < len(in); i += cut {
			s.Write([]byte(in[i:min(i+cut, len(in))]))
		}
		select {
		case <-s.C:
		default:
			t.Errorf("cut %d: marker not seen", cut)
		}
		s.to(&second)
		s.flush()
		if first.String() != "early\nprev\n" || second.String() != "restarting\npartial" {
			t.Errorf("cut %d: first %q, second %q", cut, first.String(), second.String())
		}
	}
	// Without a marker, a last line without "\n" still reaches the step.
	s := newStepRelay(restartMarker)
	var out strings.Builder
	s.to(&out)
	s.Write([]byte("release x is not complete"))
	s.flush()
	if out.String() != "release x is not complete" {
		t.Errorf("got %q", out.String())
	}
}
