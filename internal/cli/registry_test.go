package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/webhook"
)

// fakeBuilds stands in for serveParts: each build of an app is a Deployer
// of its own ("staging#2": the second configuration of staging) whose
// connections wait until the test releases that build, then fail (what
// happens on hosts is not the point here), and whose resolver says the
// branch it was asked for is at one commit.
type fakeBuilds struct {
	mu     sync.Mutex
	n      map[string]int
	gates  map[string]chan struct{}
	dials  []string // build labels, in the order their Dial was called
	closed []string
}

func newFakeBuilds() *fakeBuilds {
	return &fakeBuilds{n: map[string]int{}, gates: map[string]chan struct{}{}}
}

func (f *fakeBuilds) build(app *config.App, _ *slog.Logger) (appParts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n[app.Name]++
	label := fmt.Sprintf("%s#%d", app.Name, f.n[app.Name])
	gate := make(chan struct{})
	f.gates[label] = gate
	d := &deploy.Deployer{
		Dialer:      heldDialer{f: f, label: label, gate: gate},
		Resolver:    fixedResolver{},
		Branch:      app.Branch,
		Root:        app.Root,
		Python:      "python3",
		StepTimeout: time.Minute,
	}
	return appParts{deployer: d, close: func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.closed = append(f.closed, label)
	}}, nil
}

// release lets build label's connections go on (and fail).
func (f *fakeBuilds) release(label string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.gates[label])
}

func (f *fakeBuilds) dialled() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dials)
}

func (f *fakeBuilds) closedBuilds() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(slices.Values(f.closed))
}

type heldDialer struct {
	f     *fakeBuilds
	label string
	gate  chan struct{}
}

func (d heldDialer) Dial(ctx context.Context, h deploy.Host) (deploy.Conn, error) {
	d.f.mu.Lock()
	d.f.dials = append(d.f.dials, d.label)
	d.f.mu.Unlock()
	select {
	case <-d.gate:
		return nil, errors.New("no hosts in this test")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type fixedResolver struct{}

func (fixedResolver) Resolve(_ context.Context, p deploy.Push) (deploy.Release, error) {
	return deploy.Release{RepoURL: "/repo", Branch: p.Branch, Commit: strings.Repeat("c", 40)}, nil
}

// eventually waits (10 s at most) until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appNamesOf(list []webhook.App) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.Name)
	}
	return out
}

func mustGet(t *testing.T, reg *registry, name string) webhook.App {
	t.Helper()
	app, ok := reg.Get(name)
	if !ok {
		t.Fatalf("app %s: not served; the apps: %v", name, appNamesOf(reg.List()))
	}
	return app
}

// TestRegistryReload: SIGHUP's reload on real app files. An app added
// starts; a changed one answers with its new branch at once, while its
// running deployment ends on the old Deployer and the next one runs on the
// new; a file that does not validate keeps its app as it was and is
// reported by Problems; a removed app refuses requests while its
// deployment runs, and is gone once it has ended; a folder left without
// app files keeps the apps.
func TestRegistryReload(t *testing.T) {
	s := newAppsSetup(t)
	s.app(t, "staging", "main")
	production := s.app(t, "production", "release")
	setup, _, err := config.LoadSetup(s.envFile, true)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeBuilds()
	reg := &registry{log: slog.New(slog.DiscardHandler), build: f.build, grace: time.Second, idleEvery: 5 * time.Millisecond}
	ctx := t.Context()
	if err := reg.open(ctx, setup); err != nil {
		t.Fatal(err)
	}
	reg.start()
	stopped := false
	defer func() {
		if !stopped {
			reg.stop()
		}
	}()
	if got, want := appNamesOf(reg.List()), []string{"production", "staging"}; !slices.Equal(got, want) {
		t.Fatalf("apps %v, want %v", got, want)
	}
	if got := mustGet(t, reg, "staging").Secret; got != "staging-secret-0123456789abcdef" {
		t.Errorf("staging's secret %q, want its own", got)
	}

	// staging deploys, held in its connect step on its first build.
	staging := mustGet(t, reg, "staging").Deployments
	first, err := staging.Submit(ctx, deploy.Request{Trigger: deploy.TriggerAPI, Push: deploy.Push{Branch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "staging's deployment to connect", func() bool { return slices.Contains(f.dialled(), "staging#1") })

	// Change staging, break production, add qa; reload.
	s.app(t, "staging", "main2")
	s.write(t, production, "DEPLOY_PARALLEL=zero\n")
	s.app(t, "qa", "main")
	next, probs := setup.ReloadApps()
	setup = reg.reload(next, probs)

	if got, want := appNamesOf(reg.List()), []string{"production", "qa", "staging"}; !slices.Equal(got, want) {
		t.Errorf("after the reload: apps %v, want %v", got, want)
	}
	problems := reg.Problems()
	if len(problems) != 1 || !strings.Contains(problems[0], "production.env:1: DEPLOY_PARALLEL") {
		t.Errorf("problems %q, want the one of production.env:1 naming DEPLOY_PARALLEL", problems)
	}
	if got := mustGet(t, reg, "production").Branch; got != "release" {
		t.Errorf("production (broken file) has branch %q, want its previous release", got)
	}
	if got := mustGet(t, reg, "staging").Branch; got != "main2" {
		t.Errorf("staging's webhook branch %q right after the reload, want the new main2", got)
	}
	second, err := staging.Submit(ctx, deploy.Request{Trigger: deploy.TriggerAPI, Push: deploy.Push{Branch: "main2"}})
	if err != nil {
		t.Fatalf("a request on staging's new branch: %v", err)
	}
	if got := f.dialled(); slices.Contains(got, "staging#2") {
		t.Fatalf("staging's new configuration connected while its first deployment ran: %v", got)
	}
	f.release("staging#1")
	eventually(t, "staging's next deployment to run on its new configuration", func() bool { return slices.Contains(f.dialled(), "staging#2") })
	f.release("staging#2")
	eventually(t, "both staging deployments to end", func() bool {
		a, _ := staging.Get(first.ID)
		b, _ := staging.Get(second.ID)
		return a != nil && b != nil && a.Status == deploy.StatusFailed && b.Status == deploy.StatusFailed
	})
	if d, _ := staging.Get(first.ID); d.Release.Branch != "main" {
		t.Errorf("the deployment that ran during the reload deployed branch %q, want the old main", d.Release.Branch)
	}
	if d, _ := staging.Get(second.ID); d.Release.Branch != "main2" {
		t.Errorf("the next deployment deployed branch %q, want the new main2", d.Release.Branch)
	}

	// qa deploys; its file goes while the deployment runs.
	qa := mustGet(t, reg, "qa").Deployments
	if _, err := qa.Submit(ctx, deploy.Request{Trigger: deploy.TriggerAPI, Push: deploy.Push{Branch: "main"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "qa's deployment to connect", func() bool { return slices.Contains(f.dialled(), "qa#1") })
	if err := os.Remove(filepath.Join(s.appsDir, "qa.env")); err != nil {
		t.Fatal(err)
	}
	next, probs = setup.ReloadApps()
	setup = reg.reload(next, probs)
	if _, err := mustGet(t, reg, "qa").Deployments.Submit(ctx, deploy.Request{Trigger: deploy.TriggerAPI, Push: deploy.Push{Branch: "main"}}); !errors.Is(err, deploy.ErrClosed) {
		t.Errorf("a request for qa while its removal waits for its deployment: %v, want ErrClosed", err)
	}
	f.release("qa#1")
	eventually(t, "qa to be gone once its deployment ended", func() bool {
		_, ok := reg.Get("qa")
		return !ok
	})
	eventually(t, "qa's keys to be released", func() bool { return slices.Contains(f.closedBuilds(), "qa#1") })

	// Fixed, production's file is taken again: no problem left.
	s.app(t, "production", "release")
	next, probs = setup.ReloadApps()
	setup = reg.reload(next, probs)
	if p := reg.Problems(); len(p) != 0 {
		t.Errorf("problems after production.env was fixed: %q", p)
	}

	// A folder left without app files keeps the apps there are.
	for _, name := range []string{"staging", "production"} {
		if err := os.Remove(filepath.Join(s.appsDir, name+".env")); err != nil {
			t.Fatal(err)
		}
	}
	next, probs = setup.ReloadApps()
	reg.reload(next, probs)
	if got, want := appNamesOf(reg.List()), []string{"production", "staging"}; !slices.Equal(got, want) {
		t.Errorf("after every file was removed: apps %v, want them kept: %v", got, want)
	}
	if len(reg.Problems()) == 0 {
		t.Errorf("every app file removed: no problem reported")
	}

	reg.stop()
	stopped = true
	// Every build's keys are released once serve stops (production kept
	// its first build: its changed file never validated... until fixed,
	// when it was equal to the first).
	if diff := cmp.Diff([]string{"production#1", "qa#1", "staging#1", "staging#2"}, f.closedBuilds()); diff != "" {
		t.Errorf("builds closed (-want +got):\n%s", diff)
	}
}

// TestRegistryRefusesAppWithoutSecret: an app whose file gives no webhook
// secret is not started (serve would not start with it either), and is a
// problem; with DEPLOY_WEBHOOK_INSECURE it runs.
func TestRegistryRefusesAppWithoutSecret(t *testing.T) {
	s := newAppsSetup(t)
	s.app(t, "staging", "main")
	setup, _, err := config.LoadSetup(s.envFile, true)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeBuilds()
	reg := &registry{log: slog.New(slog.DiscardHandler), build: f.build, grace: time.Second}
	if err := reg.open(t.Context(), setup); err != nil {
		t.Fatal(err)
	}
	reg.start()
	defer reg.stop()
	hosts := filepath.Join(s.dir, "qa-hosts.txt")
	s.write(t, hosts, "local\n")
	s.write(t, filepath.Join(s.appsDir, "qa.env"), "DEPLOY_HOSTS_FILE="+hosts+"\nDEPLOY_ROOT="+filepath.Join(s.dir, "srv", "qa")+"\n")
	next, probs := setup.ReloadApps()
	reg.reload(next, probs)
	if _, ok := reg.Get("qa"); ok {
		t.Errorf("qa, without a webhook secret, is served")
	}
	if p := reg.Problems(); len(p) != 1 || !strings.Contains(p[0], "qa.env: DEPLOY_WEBHOOK_SECRET is required by serve") {
		t.Errorf("problems %q, want qa.env's missing secret", p)
	}
}
