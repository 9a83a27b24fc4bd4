package deploy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pushdeploy/pushdeploy/internal/deploytest"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// usePlanPython makes the rig's python also answer the dry run's probe
// ("-B -c …" prints the executable and version) on top of what
// deploytest.FakePython does.
func usePlanPython(r *rig) {
	py := filepath.Join(r.dir, "python-plan")
	probe := "#!/bin/sh\nif [ \"$1 $2\" = \"-B -c\" ]; then echo \"$0 3.12.0\"; exit 0; fi\n"
	r.must(os.WriteFile(py, []byte(probe+strings.TrimPrefix(deploytest.FakePython, "#!/bin/sh\n")), 0o755))
	r.d.Python = py
}

// homeState fingerprints everything under dir: names, types, modes, sizes,
// modification times, symlink targets and file contents.
func homeState(t *testing.T, dir string) string {
	t.Helper()
	state, err := testhosts.TreeState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// homeStates fingerprints every host's home.
func (r *rig) homeStates() map[string]string {
	states := map[string]string{}
	for _, h := range r.hosts {
		states[h.Name] = homeState(r.t, r.dialer.homes[h.Name])
	}
	return states
}

// plan runs Plan on every host of the rig and checks that no host changed.
func (r *rig) plan() (*Plan, error) {
	r.t.Helper()
	before := r.homeStates()
	plan, err := r.d.Plan(context.Background(), r.hosts, Push{Branch: "release"})
	if diff := cmp.Diff(before, r.homeStates()); diff != "" {
		r.t.Errorf("the dry run changed hosts (-before +after):\n%s", diff)
	}
	return plan, err
}

func TestPlanAfterTwoDeploys(t *testing.T) {
	r := newRig(t, 3)
	usePlanPython(r)
	r.commit("flask")
	var deps []*Deployment
	for range 2 {
		r.clock.Tick()
		dep, err := deployNow(r.d, r.hosts[:2], Push{Branch: "release"})
		if err != nil {
			t.Fatal(err)
		}
		deps = append(deps, dep)
		r.commit("flask==2")
	}
	sha := r.commits[len(r.commits)-1]
	// web1: a release an interrupted deploy left behind, and a folder that
	// is not a release. web1 has the shared .env, web2 lacks it, web3 has
	// never been deployed.
	home1 := r.dialer.homes["web1"]
	leftover := "20200101000000-abcdef0"
	r.must(os.MkdirAll(filepath.Join(home1, "app", "releases", leftover, "venv"), 0o755))
	r.must(os.MkdirAll(filepath.Join(home1, "app", "releases", "not-a-release"), 0o755))
	r.must(os.MkdirAll(filepath.Join(home1, "app", "shared"), 0o755))
	r.must(os.WriteFile(filepath.Join(home1, "app", "shared", ".env"), []byte("SECRET=1\n"), 0o600))
	r.d.SharedPaths = []string{".env", "media"}
	r.d.KeepReleases = 1

	plan, err := r.plan()
	if !errors.Is(err, ErrWouldFail) || !strings.Contains(err.Error(), "web2, web3") || strings.Contains(err.Error(), "web1") {
		t.Errorf("got %v, want ErrWouldFail naming web2 and web3 only", err)
	}
	if plan == nil {
		t.Fatal("no plan")
	}
	if plan.Commit != sha || plan.Branch != "release" || !strings.HasSuffix(plan.ReleaseName, "-"+sha[:7]) || ValidReleaseName(plan.ReleaseName) != nil {
		t.Errorf("plan %s %s %s, want commit %s", plan.Commit, plan.Branch, plan.ReleaseName, sha)
	}
	if _, err := os.Lstat(filepath.Join(r.dialer.homes["web3"], "app")); !os.IsNotExist(err) {
		t.Errorf("the dry run created web3's root (%v)", err)
	}

	old, cur := deps[0].ReleaseName, deps[1].ReleaseName
	web1 := plan.Hosts[0]
	want := HostPlan{
		Host: r.hosts[0], Root: filepath.Join(home1, "app"), RootExists: true,
		Current: cur, Previous: old, Releases: []string{cur, old, leftover},
		RemoveIncomplete: []string{leftover}, RemoveOld: []string{old},
		Python: r.d.Python + " 3.12.0", Steps: r.d.plannedSteps(),
		Notes: []string{"shared folder " + filepath.Join(home1, "app", "shared", "media") + " would be created"},
	}
	if diff := cmp.Diff(want, web1); diff != "" {
		t.Errorf("web1 plan (-want +got):\n%s", diff)
	}
	if web2 := plan.Hosts[1]; len(web2.Problems) != 1 || !strings.Contains(web2.Problems[0], "shared file "+filepath.Join(r.dialer.homes["web2"], "app", "shared", ".env")+" is missing") {
		t.Errorf("web2 problems %q, want the missing .env", web2.Problems)
	}
	web3 := plan.Hosts[2]
	if web3.RootExists || web3.Root != filepath.Join(r.dialer.homes["web3"], "app") || web3.Current != "" || len(web3.Releases) != 0 ||
		!slices.Contains(web3.Notes, "root folder "+web3.Root+" would be created") {
		t.Errorf("web3 plan %+v, want a root to be created and nothing else", web3)
	}

	// What the plan said cleanup would remove is what a deploy removes.
	for _, h := range r.hosts[1:] {
		p := filepath.Join(r.dialer.homes[h.Name], "app", "shared", ".env")
		r.must(os.MkdirAll(filepath.Dir(p), 0o755))
		r.must(os.WriteFile(p, []byte("SECRET=1\n"), 0o600))
	}
	dep, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(r.releases("web1"), " "), cur+" "+dep.ReleaseName+" not-a-release"; got != want {
		t.Errorf("web1 after the deploy: %q, want %q", got, want)
	}
}

func TestPlanStepsAreTheDeploysSteps(t *testing.T) {
	r := newRig(t, 1)
	r.commit("flask")
	r.d.SharedPaths = []string{"media"}
	r.d.KeepReleases = 3
	r.d.HealthURL = "http://{host}/health"
	r.d.HTTPClient = &http.Client{Transport: healthByHost{}}
	dep, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	var got []Step
	for _, s := range dep.Hosts[0].Steps {
		if s.Name != StepConnect {
			got = append(got, s.Name)
		}
	}
	if diff := cmp.Diff(r.d.deploySteps(), got); diff != "" {
		t.Errorf("the plan's steps differ from the deploy's (-plan +deploy):\n%s", diff)
	}
	r.d.SharedPaths, r.d.KeepReleases, r.d.HealthURL, r.d.RestartCmd = nil, 0, "", ""
	want := []string{"prepare", "fetch", "pip-copy (makes the host's compiled copy of pip, once per Python)", "lock", "checkout", "venv", "pip",
		"before-switch (if the release has .pushdeploy/before-switch)", "switch",
		"after-switch (if the release has .pushdeploy/after-switch)"}
	if diff := cmp.Diff(want, r.d.plannedSteps()); diff != "" {
		t.Errorf("minimal steps (-want +got):\n%s", diff)
	}
}

func TestPlanReportsAHeldLock(t *testing.T) {
	r := newRig(t, 2)
	usePlanPython(r)
	r.commit("flask")
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(r.dialer.homes["web2"], "app", ".pushdeploy.lock")
	r.must(os.WriteFile(lock, []byte("deployment 42 since 2026-01-01T00:00:00Z (pushdeploy on ci, pid 7)\n"), 0o644))
	release := deploytest.HoldLock(t, lock)

	plan, err := r.plan()
	if !errors.Is(err, ErrWouldFail) || !strings.HasSuffix(err.Error(), "on web2") {
		t.Errorf("got %v, want ErrWouldFail on web2", err)
	}
	if plan.Hosts[0].LockHolder != "" || len(plan.Hosts[0].Problems) != 0 {
		t.Errorf("web1: lock %q, problems %q; want free and none", plan.Hosts[0].LockHolder, plan.Hosts[0].Problems)
	}
	web2 := plan.Hosts[1]
	if web2.LockHolder != "deployment 42 since 2026-01-01T00:00:00Z (pushdeploy on ci, pid 7)" ||
		len(web2.Problems) != 1 || !strings.Contains(web2.Problems[0], "host busy: locked by deployment 42") {
		t.Errorf("web2: lock %q, problems %q", web2.LockHolder, web2.Problems)
	}
	// The probe took a shared lock only for an instant: a deploy is not
	// kept waiting once the holder is gone.
	release()
	if _, err := r.plan(); err != nil {
		t.Errorf("after the holder is gone: %v", err)
	}
}

func TestPlanReportsMissingToolsAndPythonAndUnreachableHosts(t *testing.T) {
	r := newRig(t, 3)
	r.commit("flask")
	r.d.Python = "python3.99-missing"
	r.dialer.err = map[string]error{"web3": errors.New("host key of web3 is unknown")}
	plan, err := r.plan()
	if !errors.Is(err, ErrWouldFail) || !strings.Contains(err.Error(), "web1, web2, web3") {
		t.Fatalf("got %v, want ErrWouldFail on every host", err)
	}
	if p := plan.Hosts[0].Problems; len(p) != 1 || !strings.Contains(p[0], "python3.99-missing (DEPLOY_PYTHON) not found") {
		t.Errorf("web1 problems %q", p)
	}
	if p := plan.Hosts[2].Problems; len(p) != 1 || !strings.Contains(p[0], "connect: host key of web3 is unknown") {
		t.Errorf("web3 problems %q", p)
	}
	for _, h := range r.hosts {
		if _, err := os.Lstat(filepath.Join(r.dialer.homes[h.Name], "app")); !os.IsNotExist(err) {
			t.Errorf("%s: root created (%v)", h.Name, err)
		}
	}
	// A resolver failure is the plan's error, with no plan and no login.
	r.dialer.dialed = nil
	r.d.Resolver = fakeResolver{err: errors.New("branch release not found")}
	if plan, err := r.plan(); plan != nil || err == nil || errors.Is(err, ErrWouldFail) || len(r.dialer.dialed) != 0 {
		t.Errorf("resolver failure: plan %v, err %v, dialed %v", plan, err, r.dialer.dialed)
	}
}

func TestPlanGitAccess(t *testing.T) {
	r := newRig(t, 1)
	usePlanPython(r)
	sha := r.commit("flask")
	if _, err := r.plan(); err != nil {
		t.Fatalf("plan: %v", err)
	}
	r.d.Resolver = fakeResolver{rel: Release{RepoURL: filepath.Join(r.dir, "nope"), Branch: "release", Commit: sha}}
	plan, err := r.plan()
	if !errors.Is(err, ErrWouldFail) || len(plan.Hosts[0].Problems) != 1 || !strings.HasPrefix(plan.Hosts[0].Problems[0], "git access: ") {
		t.Errorf("unreadable repository: err %v, problems %q", err, plan.Hosts[0].Problems)
	}
}

func TestRetentionVictims(t *testing.T) {
	d := func(name string) entry { return entry{name: name, dir: true, revision: true} }
	a, b, c, n := "20260101000000-aaaaaaa", "20260102000000-bbbbbbb", "20260103000000-ccccccc", "20260104000000-ddddddd"
	tests := []struct {
		name    string
		entries []entry
		prev    string
		keep    int
		want    []string
	}{
		{"keep 1 spares previous", []entry{d(a), d(b), d(c)}, c, 1, []string{a, b}},
		{"keep 2", []entry{d(a), d(b), d(c)}, c, 2, []string{a, b}},
		{"keep 3", []entry{d(a), d(b), d(c)}, c, 3, []string{a}},
		{"keep many", []entry{d(a), d(b), d(c)}, c, 9, nil},
		{"previous is old", []entry{d(a), d(b), d(c)}, a, 1, []string{b, c}},
		{"first deploy", nil, "", 1, nil},
		// A file named like a release neither stops the cleanup nor
		// counts as one of the kept releases; it stays.
		{"oldest is not a folder", []entry{{name: a}, d(b), d(c)}, c, 1, []string{b}},
		{"a file is not a release", []entry{d(a), {name: b}, d(c)}, c, 2, []string{a}},
		{"a file is not a release, keep 3", []entry{d(a), {name: b}, d(c)}, c, 3, nil},
	}
	for _, tt := range tests {
		if got := retentionVictims(tt.entries, n, tt.prev, tt.keep); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestBeforeSwitchStepsAreKnown: every step a deploy runs before its
// switch, in clone and push mode, is one a stopping deployment does not
// start (a step missing from beforeSwitch would still run after a stop).
func TestBeforeSwitchStepsAreKnown(t *testing.T) {
	for _, d := range []*Deployer{
		{SharedPaths: []string{".env"}},
		{SharedPaths: []string{".env"}, Archiver: fakeArchiver{}},
	} {
		for _, step := range d.deploySteps() {
			if step == "switch" {
				break
			}
			if !beforeSwitch[step] {
				t.Errorf("step %s runs before the switch but is not in beforeSwitch", step)
			}
		}
	}
}

// fakeArchiver stands for push mode where only the step list matters.
type fakeArchiver struct{}

func (fakeArchiver) Archive(context.Context, string, io.Writer) error { return nil }
