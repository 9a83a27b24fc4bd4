package webhook

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

var updatePages = flag.Bool("update-pages", false, "rewrite testdata/page-*.html from the pages as served now")

// onePageFixture is a deployer of one app with two finished deployments,
// each with a host: what the one-app pages are compared on.
func onePageFixture() *fakeDeployments {
	q := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	a := appDeployment("20261125-200000-00000a", "", strings.Repeat("a", 40), q)
	a.ReleaseName = "20261125200000-aaaaaaa"
	a.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusSucceeded, Duration: 3 * time.Second,
		Steps: []deploy.StepResult{{Name: "pip", Status: deploy.StatusSucceeded, Started: q, Duration: 2 * time.Second}}}}
	b := appDeployment("20261125-200100-00000b", "", strings.Repeat("b", 40), q.Add(time.Minute))
	b.Action, b.Request.Trigger, b.Request.Actor = deploy.ActionRollback, deploy.TriggerCLI, "ops"
	return &fakeDeployments{deps: map[string]*deploy.Deployment{a.ID: a, b.ID: b}}
}

// TestOneAppPagesUnchanged: with one app, the status page's index and a
// deployment's page are what they were before there were apps (byte for
// byte: testdata/page-*.html were written by the server of before).
func TestOneAppPagesUnchanged(t *testing.T) {
	s, err := New(Config{APIToken: pageToken, StateDir: t.TempDir(), Version: "v1.2.3"}, testApp(onePageFixture()))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	for _, tc := range []struct{ path, golden string }{
		{"/", "page-one-app-index.html"},
		{"/deployments/20261125-200000-00000a", "page-one-app-deployment.html"},
		{"/deployments/20261125-200100-00000b", "page-one-app-rollback.html"},
	} {
		w := do(h, http.MethodGet, tc.path, "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+pageToken) })
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", tc.path, w.Code)
		}
		file := filepath.Join("testdata", tc.golden)
		if *updatePages {
			if err := os.WriteFile(file, w.Body.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), w.Body.String()); diff != "" {
			t.Errorf("GET %s changed with one app (-before +now):\n%s", tc.path, diff)
		}
	}
}

// TestOverviewPage: with several apps, / shows every app (its hosts, its
// last deployment and its buttons at the per-app API) with stable ids and
// data attributes; each app's page is at /apps/{app}, with its own
// deployments and buttons; a deployment's page acts on its app.
func TestOverviewPage(t *testing.T) {
	ta := newTwoApps(t, func(c *Config) { c.APIToken = pageToken })
	run := appDeployment("20261125-200200-00000c", "production", strings.Repeat("c", 40), time.Date(2026, 11, 25, 20, 2, 0, 0, time.UTC))
	run.Status, run.Finished = deploy.StatusRunning, time.Time{}
	run.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning,
		Steps: []deploy.StepResult{{Name: "clone", Status: deploy.StatusSucceeded}, {Name: "pip", Status: deploy.StatusRunning}}}}
	ta.production.setHealth(deploy.Health{Running: run, Last: ta.production.deps["20261125-200100-00000b"]})
	ta.staging.setHealth(deploy.Health{Last: ta.staging.deps["20261125-200000-00000a"], QueueLength: 2})
	auth := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+pageToken) }

	page := func(path string) string {
		t.Helper()
		w := do(ta.h, http.MethodGet, path, "", auth)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), pageToken) {
			t.Fatalf("GET %s shows the token", path)
		}
		return w.Body.String()
	}
	overview := page("/")
	for _, want := range []string{
		`id="apps" class="apps" data-events="/overview/events"`,
		`<section class="app" id="app-production" data-app="production" data-running="20261125-200200-00000c" data-queue="0">`,
		`<section class="app" id="app-staging" data-app="staging" data-running="" data-queue="2">`,
		`<tbody data-src="/apps/staging/releases.json">`,
		`<tr data-app="production" data-host="web1" data-commit="" data-status="running">`,
		`<span class="badge" data-status="running">running · pip</span>`,
		`<tr data-app="production" data-host="web2" data-commit="" data-status="">`,
		`data-role="last" data-deployment="20261125-200000-00000a" data-status="succeeded"`,
		`data-url="/api/apps/staging/deploy"`, `data-url="/api/apps/production/rollback"`,
		`id="deploy-staging"`, `id="rollback-production"`,
		`2 queued`,
	} {
		if !strings.Contains(overview, want) {
			t.Errorf("the overview lacks %s", want)
		}
	}
	if strings.Index(overview, `id="app-production"`) > strings.Index(overview, `id="app-staging"`) {
		t.Error("the apps are not in name order")
	}

	app := page("/apps/staging")
	for _, want := range []string{`<h1>staging: deployments</h1>`, `data-events="/overview/events?app=staging"`, `data-url="/api/apps/staging/deploy"`, `data-url="/api/apps/staging/rollback"`,
		`data-src="/apps/staging/releases.json"`, `data-deployment="20261125-200000-00000a"`} {
		if !strings.Contains(app, want) {
			t.Errorf("staging's page lacks %s", want)
		}
	}
	if strings.Contains(app, "20261125-200100-00000b") {
		t.Error("staging's page lists production's deployment")
	}
	dep := page("/deployments/20261125-200100-00000b")
	for _, want := range []string{`<a id="dep-app" href="/apps/production">production</a>`, `data-url="/api/apps/production/rollback"`} {
		if !strings.Contains(dep, want) {
			t.Errorf("production's deployment page lacks %s", want)
		}
	}
	if w := do(ta.h, http.MethodGet, "/apps/qa", "", auth); w.Code != http.StatusNotFound {
		t.Errorf("GET /apps/qa: %d, want 404", w.Code)
	}
	if w := do(ta.h, http.MethodGet, "/", "", nil); w.Code != http.StatusSeeOther {
		t.Errorf("the overview without a session: %d, want 303 to sign in", w.Code)
	}
	rel := do(ta.h, http.MethodGet, "/apps/production/releases.json", "", auth)
	if rel.Code != http.StatusOK || !strings.Contains(rel.Body.String(), strings.Repeat("c", 40)) {
		t.Errorf("production's releases: %d %s", rel.Code, rel.Body)
	}
}

// TestOverviewStream: one stream tells every app's state, then each
// change of any app as it happens; it needs the page's access, and counts
// against the stream bounds.
func TestOverviewStream(t *testing.T) {
	ta := newTwoApps(t, nil)
	ta.s.page.heartbeat = 50 * time.Millisecond
	srv := httptest.NewServer(ta.h)
	t.Cleanup(srv.Close)
	r := &streamRig{t: t, srv: srv}

	resp, sse := r.get("/overview/events", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /overview/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	next := func(what string) sseEvent {
		t.Helper()
		ev, ok := sse.next()
		if !ok {
			t.Fatalf("the stream ended, waiting for %s", what)
		}
		return ev
	}
	if ev := next("the apps"); ev.kind != "apps" || fmt.Sprint(ev.data["apps"]) != "[production staging]" {
		t.Fatalf("first event %s %v, want apps [production staging]", ev.kind, ev.data)
	}
	for _, want := range []string{"production", "staging"} {
		if ev := next(want); ev.kind != "app" || ev.data["app"] != want {
			t.Fatalf("event %s %v, want %s's state", ev.kind, ev.data, want)
		}
	}
	// staging starts a deployment, then it ends: both are told.
	run := appDeployment("20261125-200200-00000c", "staging", strings.Repeat("c", 40), time.Now())
	run.Status, run.Finished = deploy.StatusRunning, time.Time{}
	run.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning, Steps: []deploy.StepResult{{Name: "clone", Status: deploy.StatusRunning}}}}
	ta.staging.setHealth(deploy.Health{Running: run})
	ev := next("staging running")
	running, _ := ev.data["running"].(map[string]any)
	if ev.kind != "app" || ev.data["app"] != "staging" || running["id"] != run.ID || fmt.Sprint(running["hosts"]) != "[map[host:web1 status:running step:clone]]" {
		t.Fatalf("event %s %v, want staging running %s on web1 (clone)", ev.kind, ev.data, run.ID)
	}
	done := run.Snapshot()
	done.Status, done.Finished = deploy.StatusSucceeded, time.Now()
	ta.staging.setHealth(deploy.Health{Last: done})
	ev = next("staging done")
	last, _ := ev.data["last"].(map[string]any)
	if ev.kind != "app" || ev.data["app"] != "staging" || ev.data["running"] != nil || last["id"] != run.ID || last["status"] != "succeeded" {
		t.Fatalf("event %s %v, want staging's %s succeeded", ev.kind, ev.data, run.ID)
	}
}

// TestOverviewStreamGuarded: the overview's stream needs the page's
// access, and counts against a client's streams like a deployment's.
func TestOverviewStreamGuarded(t *testing.T) {
	ta := newTwoApps(t, nil)
	srv := httptest.NewServer(ta.h)
	t.Cleanup(srv.Close)
	r := &streamRig{t: t, srv: srv}
	resp, err := http.Get(srv.URL + "/overview/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", resp.StatusCode)
	}
	for i := range maxStreamsPerClient {
		if resp, _ := r.get("/overview/events", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i+1, resp.StatusCode)
		}
	}
	if resp, _ := r.get("/overview/events", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("one stream more from one client: %d, want 429", resp.StatusCode)
	}
	if resp, _ := r.get("/api/deployments/"+strings.ReplaceAll(overviewStreamKey, " ", "%20")+"/events", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a deployment stream named as the overview's key: %d, want 404", resp.StatusCode)
	}
}

// TestAppPageStream: an app's page follows its own app only.
func TestAppPageStream(t *testing.T) {
	ta := newTwoApps(t, nil)
	srv := httptest.NewServer(ta.h)
	t.Cleanup(srv.Close)
	r := &streamRig{t: t, srv: srv}
	if resp, _ := r.get("/overview/events?app=qa", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("?app=qa: %d, want 404", resp.StatusCode)
	}
	_, sse := r.get("/overview/events?app=staging", nil)
	for _, want := range []string{"apps", "app"} {
		if ev, ok := sse.next(); !ok || ev.kind != want || (want == "app" && ev.data["app"] != "staging") {
			t.Fatalf("event %s %v, want %s (staging's)", ev.kind, ev.data, want)
		}
	}
	ta.production.setHealth(deploy.Health{QueueLength: 3})
	ta.staging.setHealth(deploy.Health{QueueLength: 1})
	if ev, ok := sse.next(); !ok || ev.data["app"] != "staging" || ev.data["queue_length"] != 1.0 {
		t.Fatalf("event %s %v, want staging's queue of 1 (production's change is not told)", ev.kind, ev.data)
	}
}
