package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// fakeApps is a fixed set of apps.
type fakeApps struct {
	apps     []App
	problems []string
}

func (f *fakeApps) List() []App { return f.apps }

func (f *fakeApps) Get(name string) (App, bool) {
	for _, a := range f.apps {
		if a.Name == name {
			return a, true
		}
	}
	return App{}, false
}

func (f *fakeApps) Problems() []string { return f.problems }

// twoApps is staging (branch main, its own secret) and production (branch
// release, another secret), each with its own fake worker holding one
// finished deployment.
type twoApps struct {
	apps                *fakeApps
	staging, production *fakeDeployments
	s                   *Server
	h                   http.Handler
}

const (
	stagingSecret    = "staging-secret"
	productionSecret = "production-secret"
)

func appDeployment(id, app, commit string, queued time.Time) *deploy.Deployment {
	d := deploy.NewDeployment(deploy.Request{Trigger: deploy.TriggerAPI, Push: deploy.Push{Branch: "x"}}, queued)
	d.ID, d.App, d.Status = id, app, deploy.StatusSucceeded
	d.Release.Commit = commit
	d.Started, d.Finished = queued, queued.Add(time.Minute)
	return d
}

func newTwoApps(t *testing.T, mod func(*Config)) *twoApps {
	t.Helper()
	q := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	stg := appDeployment("20261125-200000-00000a", "staging", strings.Repeat("a", 40), q)
	prd := appDeployment("20261125-200100-00000b", "production", strings.Repeat("b", 40), q.Add(time.Minute))
	rel := func(commits ...string) func() ([]deploy.HostReleases, error) {
		return func() ([]deploy.HostReleases, error) {
			var out []deploy.HostReleases
			for i, c := range commits {
				name := "20261125200000-" + c[:7]
				out = append(out, deploy.HostReleases{Host: deploy.Host{Name: "web" + string(rune('1'+i))}, Current: name,
					Releases: []deploy.ReleaseInfo{{Name: name, Commit: c, Current: true, Complete: true}}})
			}
			return out, nil
		}
	}
	ta := &twoApps{
		staging: &fakeDeployments{deps: map[string]*deploy.Deployment{stg.ID: stg}, releases: rel(strings.Repeat("a", 40)),
			submit: func(deploy.Request) (deploy.Ticket, error) { return deploy.Ticket{ID: "stg-1", Status: "queued"}, nil }},
		production: &fakeDeployments{deps: map[string]*deploy.Deployment{prd.ID: prd}, releases: rel(strings.Repeat("b", 40), strings.Repeat("c", 40)),
			submit: func(deploy.Request) (deploy.Ticket, error) { return deploy.Ticket{ID: "prd-1", Status: "queued"}, nil }},
	}
	ta.apps = &fakeApps{apps: []App{
		{Name: "production", Secret: productionSecret, Branch: "release", Hosts: []string{"web1", "web2"}, Deployments: ta.production},
		{Name: "staging", Secret: stagingSecret, Branch: "main", Repo: "team/app", Hosts: []string{"web1"}, Deployments: ta.staging},
	}}
	cfg := Config{APIToken: "tok", StateDir: t.TempDir()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, ta.apps)
	if err != nil {
		t.Fatal(err)
	}
	ta.s, ta.h = s, s.Handler()
	return ta
}

// pushTo is a GitHub push of branch, signed with secret, to path.
func pushTo(path, branch, secret string) *http.Request {
	body := githubPush("refs/heads/"+branch, strings.Repeat("d", 40))
	r := signedRequest(GitHub, "push", body, secret)
	r.URL.Path = path
	return r
}

func api(method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer tok")
	return r
}

// TestAppRoutes: each app's webhook verifies with its own secret only and
// deploys that app; /webhook and the single-app API answer 404 naming the
// per-app path when there are several apps; unknown apps are 404.
func TestAppRoutes(t *testing.T) {
	tests := []struct {
		name string
		req  *http.Request
		code int
		// to is the app the request reaches ("" none); branch its
		// request's branch.
		to, branch string
		// says is a part of the answer's error; never, what it must not
		// hold.
		says, never string
	}{
		{name: "staging's push to /webhook/staging", req: pushTo("/webhook/staging", "main", stagingSecret), code: 202, to: "staging", branch: "main"},
		{name: "production's push to /webhook/production", req: pushTo("/webhook/production", "release", productionSecret), code: 202, to: "production", branch: "release"},
		{name: "signed with staging's secret to /webhook/production", req: pushTo("/webhook/production", "release", stagingSecret), code: 401},
		{name: "signed with production's secret to /webhook/staging", req: pushTo("/webhook/staging", "main", productionSecret), code: 401},
		{name: "production's branch to staging", req: pushTo("/webhook/staging", "release", stagingSecret), code: 200},
		{name: "/webhook with several apps", req: pushTo("/webhook", "release", productionSecret), code: 404,
			says: "/webhook/{app}", never: "staging"},
		{name: "no such app", req: pushTo("/webhook/qa", "main", stagingSecret), code: 404, says: "no app qa"},
		{name: "not an app name", req: pushTo("/webhook/Staging", "main", stagingSecret), code: 404, says: "no such app", never: "Staging"},
		{name: "/api/deploy with several apps", req: api("POST", "/api/deploy", ""), code: 404, says: "POST /api/apps/{app}/deploy"},
		{name: "/api/rollback with several apps", req: api("POST", "/api/rollback", ""), code: 404, says: "POST /api/apps/{app}/rollback"},
		{name: "/api/releases with several apps", req: api("GET", "/api/releases", ""), code: 404, says: "GET /api/apps/{app}/releases"},
		{name: "/releases.json with several apps", req: api("GET", "/releases.json", ""), code: 404, says: "/apps/{app}/releases.json"},
		{name: "deploy staging", req: api("POST", "/api/apps/staging/deploy", `{"commit":"abc1234"}`), code: 202, to: "staging", branch: "main"},
		{name: "promote staging to production", req: api("POST", "/api/apps/production/deploy", `{"from":"staging"}`), code: 202, to: "production", branch: "release"},
		{name: "from not an app name", req: api("POST", "/api/apps/production/deploy", `{"from":"Staging!"}`), code: 400, says: "from:"},
		{name: "from no such app", req: api("POST", "/api/apps/production/deploy", `{"from":"qa"}`), code: 400, says: "there is no app qa"},
		{name: "from and commit", req: api("POST", "/api/apps/production/deploy", `{"from":"staging","commit":"abc1234"}`), code: 400, says: "give one"},
		{name: "deploy no such app", req: api("POST", "/api/apps/qa/deploy", ""), code: 404, says: "no app qa"},
		{name: "roll staging back", req: api("POST", "/api/apps/staging/rollback", ""), code: 202, to: "staging"},
		{name: "per-app API needs the token", req: httptest.NewRequest("POST", "/api/apps/staging/deploy", nil), code: 401},
		{name: "/api/apps needs the token", req: httptest.NewRequest("GET", "/api/apps", nil), code: 401},
		{name: "?app= not an app name", req: api("GET", "/api/deployments?app=Prod", ""), code: 400, says: "app:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTwoApps(t, nil)
			code, out := serveJSON(ta.h, tt.req)
			if code != tt.code {
				t.Fatalf("%s %s: %d %v, want %d", tt.req.Method, tt.req.URL, code, out, tt.code)
			}
			msg, _ := out["error"].(string)
			if tt.says != "" && !strings.Contains(msg, tt.says) {
				t.Errorf("error %q, want it to say %q", msg, tt.says)
			}
			if tt.never != "" && strings.Contains(msg, tt.never) {
				t.Errorf("error %q names %q", msg, tt.never)
			}
			for name, f := range map[string]*fakeDeployments{"staging": ta.staging, "production": ta.production} {
				switch {
				case name == tt.to && len(f.reqs) != 1:
					t.Errorf("%s got %d requests, want 1", name, len(f.reqs))
				case name != tt.to && len(f.reqs) != 0:
					t.Errorf("%s got requests %+v, want none", name, f.reqs)
				case name == tt.to && tt.branch != "" && f.reqs[0].Push.Branch != tt.branch:
					t.Errorf("%s's request is for branch %q, want %q", name, f.reqs[0].Push.Branch, tt.branch)
				}
			}
			if tt.name == "promote staging to production" && ta.production.reqs[0].From != "staging" {
				t.Errorf("request %+v, want From staging", ta.production.reqs[0])
			}
		})
	}
}

// TestOneAppRoutes: with one app, /webhook, /webhook/{its name} and the
// single-app API all reach it.
func TestOneAppRoutes(t *testing.T) {
	for _, tt := range []struct {
		name string
		req  *http.Request
	}{
		{"/webhook", pushTo("/webhook", "release", secret)},
		{"/webhook/default", pushTo("/webhook/default", "release", secret)},
		{"/api/deploy", api("POST", "/api/deploy", "")},
		{"/api/apps/default/deploy", api("POST", "/api/apps/default/deploy", "")},
		{"/api/rollback", api("POST", "/api/rollback", "")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDeployments{}
			h := newTestServer(t, f, nil)
			if code, out := serveJSON(h, tt.req); code != http.StatusAccepted || len(f.reqs) != 1 {
				t.Errorf("%d %v, %d requests: want 202 and one request", code, out, len(f.reqs))
			}
		})
	}
}

// TestDeploymentsOfApps: ?app= lists one app's deployments, without it
// every app's, newest first, each naming its app; a deployment of any app
// is found by id.
func TestDeploymentsOfApps(t *testing.T) {
	ta := newTwoApps(t, nil)
	ids := func(query string) []string {
		t.Helper()
		code, got, _, _ := getList(t, ta.h, query)
		if code != http.StatusOK {
			t.Fatalf("GET /api/deployments%s: %d", query, code)
		}
		return got
	}
	if got, want := ids(""), []string{"20261125-200100-00000b", "20261125-200000-00000a"}; !slices.Equal(got, want) {
		t.Errorf("every app: %v, want %v", got, want)
	}
	if got, want := ids("?app=staging"), []string{"20261125-200000-00000a"}; !slices.Equal(got, want) {
		t.Errorf("?app=staging: %v, want %v", got, want)
	}
	if got := ids("?app=gone"); len(got) != 0 {
		t.Errorf("?app=gone: %v, want none", got)
	}
	code, out := serveJSON(ta.h, api("GET", "/api/deployments/20261125-200000-00000a", ""))
	if code != http.StatusOK || out["app"] != "staging" {
		t.Errorf("GET staging's deployment: %d %v, want 200 with app staging", code, out)
	}
}

// TestAPIApps: GET /api/apps tells each app's branch, its hosts' current
// commits, whether they disagree, and its last deployment.
func TestAPIApps(t *testing.T) {
	ta := newTwoApps(t, nil)
	w := httptest.NewRecorder()
	ta.h.ServeHTTP(w, api("GET", "/api/apps", ""))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/apps: %d %s", w.Code, w.Body)
	}
	var got struct {
		Apps []struct {
			Name, Branch, Repo string
			Hosts              []appHostJSON
			Disagree           bool
			LastDeployment     *struct{ ID, App, Status string } `json:"last_deployment"`
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	type host = appHostJSON
	b, c := strings.Repeat("b", 40), strings.Repeat("c", 40)
	want := []struct {
		name, branch, repo string
		hosts              []appHostJSON
		disagree           bool
		last               string
	}{
		{"production", "release", "", []host{{Host: "web1", Commit: b, Release: "20261125200000-" + b[:7]}, {Host: "web2", Commit: c, Release: "20261125200000-" + c[:7]}}, true, "20261125-200100-00000b"},
		{"staging", "main", "team/app", []host{{Host: "web1", Commit: strings.Repeat("a", 40), Release: "20261125200000-aaaaaaa"}}, false, "20261125-200000-00000a"},
	}
	if len(got.Apps) != len(want) {
		t.Fatalf("apps: %s", w.Body)
	}
	for i, a := range got.Apps {
		wa := want[i]
		if a.Name != wa.name || a.Branch != wa.branch || a.Repo != wa.repo || a.Disagree != wa.disagree {
			t.Errorf("app %d: %+v, want %+v", i, a, wa)
		}
		if diff := cmp.Diff(wa.hosts, a.Hosts); diff != "" {
			t.Errorf("app %s hosts (-want +got):\n%s", a.Name, diff)
		}
		if a.LastDeployment == nil || a.LastDeployment.ID != wa.last || a.LastDeployment.App != wa.name {
			t.Errorf("app %s last deployment %+v, want %s", a.Name, a.LastDeployment, wa.last)
		}
	}
}

// TestAPIAppsHostsUnreachable: an app whose hosts cannot be listed is
// still in /api/apps, with the error, and hosts without a commit.
func TestAPIAppsHostsUnreachable(t *testing.T) {
	ta := newTwoApps(t, nil)
	ta.staging.releases = func() ([]deploy.HostReleases, error) { return nil, errors.New("deployer is missing Dialer") }
	code, out := serveJSON(ta.h, api("GET", "/api/apps", ""))
	apps, _ := out["apps"].([]any)
	if code != http.StatusOK || len(apps) != 2 {
		t.Fatalf("%d %v", code, out)
	}
	stg := apps[1].(map[string]any)
	hosts, _ := stg["hosts"].([]any)
	if !strings.Contains(stg["error"].(string), "missing Dialer") || len(hosts) != 1 || hosts[0].(map[string]any)["commit"] != "" {
		t.Errorf("staging: %v, want the error and web1 without a commit", stg)
	}
}

// TestHealthzApps: /healthz tells each app; a stuck worker makes it 503
// naming the app; the problems of the last reload show file, line and
// variable, never the rest of the message.
func TestHealthzApps(t *testing.T) {
	ta := newTwoApps(t, nil)
	ta.apps.problems = []string{
		`/etc/pushdeploy/apps/production.env:3: DEPLOY_WEBHOOK_SECRET: "hunter2-value" is too short; use 32 characters or more`,
		`/etc/pushdeploy/apps/qa.env: read: permission denied hunter2-value`,
		`something else entirely hunter2-value`,
		`/etc/pushdeploy/apps/staging.env:5: DEPLOY_LISTEN is the server's, the same for every app: hunter2-value`,
		`/etc/pushdeploy/apps/staging.env: DEPLOY_ROOT: production and staging both deploy to hunter2-value in /srv/app;`,
		`/etc/pushdeploy/apps/staging.env: hosts-hunter2-value.txt:2: "::1": write IPv6 addresses in brackets`,
		`/etc/pushdeploy/apps/production.env:2: not a VARIABLE=value line`,
		`DEPLOY_APPS_DIR: /etc/pushdeploy/apps: the apps keep their previous configuration hunter2-value`,
	}
	ta.staging.health = deploy.Health{Stuck: "deployment x has made no progress"}
	w := httptest.NewRecorder()
	ta.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	body := w.Body.String()
	if strings.Contains(body, "hunter2") || strings.Contains(body, "/etc/pushdeploy") {
		t.Errorf("/healthz shows a value or a folder: %s", body)
	}
	var got healthJSON
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	wantProblems := []string{"production.env:3: DEPLOY_WEBHOOK_SECRET", "qa.env", "an app file failed to load (see the log)",
		"staging.env:5: DEPLOY_LISTEN", "staging.env: DEPLOY_ROOT", "staging.env", "production.env:2", "DEPLOY_APPS_DIR"}
	if diff := cmp.Diff(wantProblems, got.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(got.Reason, "app staging: deployment x has made no progress") {
		t.Errorf("%d %q, want 503 naming staging", w.Code, got.Reason)
	}
	if len(got.Apps) != 2 || got.Apps[0].Name != "production" || got.Apps[0].Status != "ok" || got.Apps[1].Status != "unhealthy" {
		t.Errorf("apps: %+v", got.Apps)
	}
}

// TestAppWebhookGuarded: DEPLOY_WEBHOOK_ALLOW_CIDRS and the rate limit
// hold for /webhook/{app} as for /webhook, also for an app that does not
// exist.
func TestAppWebhookGuarded(t *testing.T) {
	ta := newTwoApps(t, func(c *Config) { c.Guard.WebhookAllow = prefixes(t, "10.0.0.0/8") })
	for _, path := range []string{"/webhook/staging", "/webhook/qa", "/webhook"} {
		if code, out := serveJSON(ta.h, from(pushTo(path, "main", stagingSecret), "192.0.2.8:5000")); code != http.StatusForbidden {
			t.Errorf("%s from outside the webhook networks: %d %v, want 403", path, code, out)
		}
	}
	if code, out := serveJSON(ta.h, from(pushTo("/webhook/staging", "main", stagingSecret), "10.1.2.3:5000")); code != http.StatusAccepted {
		t.Errorf("/webhook/staging from inside: %d %v, want 202", code, out)
	}
	ta = newTwoApps(t, func(c *Config) { c.Guard.RateLimit, c.Guard.RateBurst = 0.001, 1 })
	codes := []int{}
	for range 2 {
		code, _ := serveJSON(ta.h, from(pushTo("/webhook/qa", "main", stagingSecret), "10.1.2.3:5000"))
		codes = append(codes, code)
	}
	if !slices.Equal(codes, []int{404, 429}) {
		t.Errorf("two webhooks for no app at a rate of 1: %v, want 404 then 429", codes)
	}
}

// TestRefused: a request promotion turns down (a *deploy.RefusedError) is
// answered 200 refused to the forge (no retry), 409 with the reason to the
// API, and counted as refused.
func TestRefused(t *testing.T) {
	const reason = "staging has not deployed dddddddddddddddddddddddddddddddddddddddd to web1"
	m := &countingMetrics{counts: map[string]int{}}
	ta := newTwoApps(t, func(c *Config) { c.Metrics = m })
	ta.production.submit = func(r deploy.Request) (deploy.Ticket, error) {
		return deploy.Ticket{ID: "prd-r", Status: "refused", Commit: strings.Repeat("d", 40)}, &deploy.RefusedError{ID: "prd-r", Reason: reason}
	}
	code, out := serveJSON(ta.h, pushTo("/webhook/production", "release", productionSecret))
	if code != http.StatusOK || out["status"] != "refused" || out["deployment"] != "prd-r" || out["reason"] != reason {
		t.Errorf("webhook: %d %v, want 200 refused prd-r with the reason", code, out)
	}
	if got := m.counts[GitHub+" "+outcomeRefused]; got != 1 {
		t.Errorf("refused webhooks counted: %d, want 1", got)
	}
	code, out = serveJSON(ta.h, api("POST", "/api/apps/production/deploy", `{"from":"staging"}`))
	if code != http.StatusConflict || out["status"] != "refused" || out["deployment"] != "prd-r" || out["reason"] != reason ||
		!strings.Contains(out["error"].(string), reason) {
		t.Errorf("API: %d %v, want 409 refused prd-r with the reason", code, out)
	}
}

// TestFromErrors: with from, the worker's untyped error (the other app's
// hosts disagree) is 409 as it is; a typed one keeps its status.
func TestFromErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{errors.New("from staging: its hosts run different commits (web1 aaaaaaa, web2 bbbbbbb): deploy one commit to all of them first"), http.StatusConflict},
		{&deploy.RequestError{Msg: "from: production is this app; name the app to promote from"}, http.StatusBadRequest},
		{&deploy.CommitError{}, http.StatusUnprocessableEntity},
		{deploy.ErrQueueFull, http.StatusServiceUnavailable},
	} {
		ta := newTwoApps(t, nil)
		ta.production.submit = func(deploy.Request) (deploy.Ticket, error) { return deploy.Ticket{}, tc.err }
		code, out := serveJSON(ta.h, api("POST", "/api/apps/production/deploy", `{"from":"staging"}`))
		if code != tc.code || strings.Contains(fmt.Sprint(out["error"]), "checking against the repository") {
			t.Errorf("%T %v: %d %v, want %d", tc.err, tc.err, code, out, tc.code)
		}
	}
}
