package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// fakeChecker fails with err, once set.
type fakeChecker struct {
	mu    sync.Mutex
	err   error
	calls int
}

func (f *fakeChecker) Check(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.err
}

func (f *fakeChecker) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// TestHealthzChecks: a failing check makes /healthz 503 and names the
// check only (its target and error name a database host and user, and
// /healthz needs no token); with the API token, each check tells its
// target and error. A healthy check says ok, with its latency.
func TestHealthzChecks(t *testing.T) {
	const target = "postgres://deployer:xxxxx@10.0.0.5:5432/pushdeploy"
	db, queue := &fakeChecker{}, &fakeChecker{}
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) {
		c.Checks = []Check{{Name: "database", Target: target, Checker: db}, {Name: "queue", Target: "queue table", Checker: queue}}
	})
	get := func(token string) (int, map[string]any) {
		r := withToken("/healthz")
		r.Header.Set("Authorization", "Bearer "+token)
		return serveJSON(h, r)
	}
	checks := func(out map[string]any) map[string]map[string]any {
		m := map[string]map[string]any{}
		list, _ := out["checks"].([]any)
		for _, c := range list {
			c := c.(map[string]any)
			m[c["name"].(string)] = c
		}
		return m
	}
	code, out := get("")
	if code != 200 || out["status"] != "ok" {
		t.Fatalf("healthy: %d %v", code, out)
	}
	c := checks(out)
	if c["database"]["status"] != "ok" || c["queue"]["status"] != "ok" || c["database"]["target"] != nil {
		t.Errorf("healthy checks without the token: %v", c)
	}
	if _, ok := c["database"]["latency_ms"].(float64); !ok {
		t.Errorf("no latency_ms: %v", c["database"])
	}

	db.fail(errors.New(`history database ` + target + `: dial tcp 10.0.0.5:5432: connect: connection refused`))
	// A new server: the last result is reused for a few seconds.
	h = newTestServer(t, &fakeDeployments{}, func(c *Config) {
		c.Checks = []Check{{Name: "database", Target: target, Checker: db}, {Name: "queue", Checker: queue}}
	})
	for _, token := range []string{"", "wrong"} {
		code, out = get(token)
		if code != 503 || out["status"] != "unhealthy" || out["reason"] != "database unavailable" {
			t.Errorf("database down (token %q): %d %v, want 503 naming the database", token, code, out)
		}
		c = checks(out)
		if c["database"]["status"] != "unavailable" || c["queue"]["status"] != "ok" {
			t.Errorf("database down: checks %v", c)
		}
		for _, leak := range []string{"10.0.0.5", "deployer", "postgres://"} {
			if body := mustJSON(out); strings.Contains(body, leak) {
				t.Errorf("/healthz without the token shows %q: %s", leak, body)
			}
		}
	}
	code, out = get("tok")
	c = checks(out)
	if code != 503 || c["database"]["target"] != target || !strings.Contains(c["database"]["error"].(string), "connection refused") {
		t.Errorf("database down, with the token: %d %v, want the target and the error", code, c)
	}
	if c["queue"]["error"] != nil {
		t.Errorf("a healthy check has an error: %v", c["queue"])
	}
}

// TestHealthzChecksAreCached: /healthz is public and polled; each check
// runs at most every historyCheckEvery, however many requests come.
func TestHealthzChecksAreCached(t *testing.T) {
	db := &fakeChecker{}
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) { c.Checks = []Check{{Name: "database", Checker: db}} })
	for range 20 {
		serveJSON(h, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.calls != 1 {
		t.Errorf("20 requests checked the database %d times, want 1", db.calls)
	}
}

// TestHealthzHistoryByDefault: without Checks, the History is checked as
// "history database".
func TestHealthzHistoryByDefault(t *testing.T) {
	hist := &checkedStore{err: errors.New("history database /var/lib/pushdeploy/history.db is not writable: disk full")}
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) { c.History = hist })
	code, out := serveJSON(h, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if code != 503 || out["reason"] != "history database unavailable" {
		t.Errorf("history not writable: %d %v", code, out)
	}
}

// checkedStore is a History whose Check fails with err.
type checkedStore struct{ err error }

func (s *checkedStore) Deployments(context.Context, deploy.Filter) ([]*deploy.Deployment, error) {
	return nil, nil
}

func (s *checkedStore) Deployment(context.Context, string) (*deploy.Deployment, bool, error) {
	return nil, false, nil
}

func (s *checkedStore) Check(context.Context) error { return s.err }

// TestAPINode: the API tells which deployer ran each deployment ("node"),
// in the list and in one deployment, and the status page shows it.
func TestAPINode(t *testing.T) {
	d := deploy.NewDeployment(deploy.Request{Trigger: deploy.TriggerWebhook, Push: deploy.Push{Branch: "release"}}, time.Now())
	d.Status, d.Node, d.Started = deploy.StatusRunning, "deploy2:4242", time.Now()
	queued := deploy.NewDeployment(deploy.Request{Trigger: deploy.TriggerWebhook, Push: deploy.Push{Branch: "release"}}, time.Now())
	f := &fakeDeployments{deps: map[string]*deploy.Deployment{d.ID: d, queued.ID: queued}}
	h := newTestServer(t, f, nil)
	get := func(path string) (int, map[string]any) { return serveJSON(h, withToken(path)) }
	code, out := get("/api/deployments/" + d.ID)
	if code != 200 || out["node"] != "deploy2:4242" {
		t.Errorf("GET /api/deployments/%s: %d node %v, want deploy2:4242", d.ID, code, out["node"])
	}
	code, out = get("/api/deployments")
	nodes := map[string]any{}
	for _, e := range out["deployments"].([]any) {
		e := e.(map[string]any)
		nodes[e["id"].(string)] = e["node"]
	}
	if code != 200 || nodes[d.ID] != "deploy2:4242" || nodes[queued.ID] != nil {
		t.Errorf("GET /api/deployments: %d nodes %v, want %s on deploy2:4242 and none for the queued one", code, nodes, d.ID)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, withToken("/deployments/"+d.ID))
	if !strings.Contains(w.Body.String(), `<dd id="dep-node">deploy2:4242</dd>`) {
		t.Errorf("the deployment's page does not name its deployer:\n%s", w.Body.String())
	}
}

// withToken is a GET of path with the test servers' API token.
func withToken(path string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Header.Set("Authorization", "Bearer tok")
	return r
}
