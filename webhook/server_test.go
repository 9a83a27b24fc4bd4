package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// fakeDeployments records what the server submits; its answers come from
// function fields.
type fakeDeployments struct {
	mu     sync.Mutex
	reqs   []deploy.Request
	submit func(deploy.Request) (deploy.Ticket, error)
	deps   map[string]*deploy.Deployment
	health deploy.Health
	// releases answers Releases.
	releases func() ([]deploy.HostReleases, error)
}

func (f *fakeDeployments) Submit(_ context.Context, r deploy.Request) (deploy.Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	if f.submit != nil {
		return f.submit(r)
	}
	return deploy.Ticket{ID: "dep-1", Status: "queued"}, nil
}

func (f *fakeDeployments) List() []*deploy.Deployment {
	var out []*deploy.Deployment
	for _, d := range f.deps {
		out = append(out, d)
	}
	return out
}

func (f *fakeDeployments) Get(id string) (*deploy.Deployment, bool) {
	d, ok := f.deps[id]
	return d, ok
}

func (f *fakeDeployments) Health() deploy.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

// setHealth changes what Health answers, while the server may ask.
func (f *fakeDeployments) setHealth(h deploy.Health) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.health = h
}

func (f *fakeDeployments) Releases(context.Context) ([]deploy.HostReleases, error) {
	if f.releases == nil {
		return nil, nil
	}
	return f.releases()
}

const secret = "test-secret"

func newTestServer(t *testing.T, f *fakeDeployments, mod func(*Config)) http.Handler {
	t.Helper()
	return newAppServer(t, mod, App{Secret: secret, Branch: "release", Deployments: f})
}

// testApp is the one app of most tests: secret, branch release, d.
func testApp(d Deployments) Apps {
	return OneApp(App{Secret: secret, Branch: "release", Deployments: d})
}

// newAppServer is a server of app (OneApp).
func newAppServer(t *testing.T, mod func(*Config), app App) http.Handler {
	t.Helper()
	cfg := Config{APIToken: "tok", StateDir: t.TempDir(), BodyLimit: 1 << 20}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, OneApp(app))
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

func githubPush(ref, after string) []byte {
	b, _ := json.Marshal(map[string]any{
		"ref": ref, "before": strings.Repeat("1", 40), "after": after, "deleted": false,
		"repository": map[string]any{"full_name": "team/app"}, "pusher": map[string]any{"name": "ada"},
	})
	return b
}

func signedGitHub(body []byte, sig string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
	r.Header.Set("X-GitHub-Event", "push")
	r.Header.Set("X-GitHub-Delivery", "abc-123")
	r.Header.Set("Content-Type", "application/json")
	if sig == "" {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		sig = "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	if sig != "-" {
		r.Header.Set("X-Hub-Signature-256", sig)
	}
	return r
}

func serveJSON(h http.Handler, r *http.Request) (int, map[string]any) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func TestWebhookAnswers(t *testing.T) {
	sha := strings.Repeat("a", 40)
	tests := []struct {
		name       string
		req        func() *http.Request
		submit     func(deploy.Request) (deploy.Ticket, error)
		wantCode   int
		wantStatus string
		wantSubmit bool
	}{
		{"queued", func() *http.Request { return signedGitHub(githubPush("refs/heads/release", sha), "") }, nil, 202, "queued", true},
		{"coalesced is queued too", func() *http.Request { return signedGitHub(githubPush("refs/heads/release", sha), "") },
			func(deploy.Request) (deploy.Ticket, error) { return deploy.Ticket{ID: "d", Status: "coalesced"}, nil }, 202, "queued", true},
		{"redelivery", func() *http.Request { return signedGitHub(githubPush("refs/heads/release", sha), "") },
			func(deploy.Request) (deploy.Ticket, error) { return deploy.Ticket{ID: "d", Status: "duplicate"}, nil }, 200, "ignored", true},
		{"other branch", func() *http.Request { return signedGitHub(githubPush("refs/heads/main", sha), "") }, nil, 200, "ignored", false},
		{"tag", func() *http.Request { return signedGitHub(githubPush("refs/tags/v1", sha), "") }, nil, 200, "ignored", false},
		{"unsigned", func() *http.Request { return signedGitHub(githubPush("refs/heads/release", sha), "-") }, nil, 401, "", false},
		{"wrong signature", func() *http.Request {
			return signedGitHub(githubPush("refs/heads/release", sha), "sha256="+strings.Repeat("0", 64))
		}, nil, 401, "", false},
		{"malformed json", func() *http.Request { return signedGitHub([]byte(`{"ref":`), "") }, nil, 400, "", false},
		{"no provider", func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader("{}"))
		}, nil, 400, "", false},
		{"too big", func() *http.Request {
			return signedGitHub(bytes.Repeat([]byte(" "), 2<<20), "")
		}, nil, 413, "", false},
		{"queue full", func() *http.Request { return signedGitHub(githubPush("refs/heads/release", sha), "") },
			func(deploy.Request) (deploy.Ticket, error) { return deploy.Ticket{}, deploy.ErrQueueFull }, 503, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDeployments{submit: tt.submit}
			code, out := serveJSON(newTestServer(t, f, nil), tt.req())
			if code != tt.wantCode {
				t.Errorf("code %d, want %d (%v)", code, tt.wantCode, out)
			}
			if tt.wantStatus != "" && out["status"] != tt.wantStatus {
				t.Errorf("status %v, want %s", out["status"], tt.wantStatus)
			}
			if code >= 400 && out["error"] == nil {
				t.Errorf("error answer without an error message: %v", out)
			}
			if got := len(f.reqs) > 0; got != tt.wantSubmit {
				t.Errorf("submitted %v, want %v", got, tt.wantSubmit)
			}
			if tt.wantSubmit {
				r := f.reqs[0]
				if r.Trigger != "webhook" || r.Provider != GitHub || r.DeliveryID != "abc-123" || r.PayloadCommit != sha || r.Push.Branch != "release" || r.Push.Commit != "" {
					t.Errorf("request %+v: the tip must be resolved from the repository, the payload commit only recorded", r)
				}
			}
		})
	}
}

func TestServerRefusesAnEmptySecret(t *testing.T) {
	if _, err := New(Config{}, OneApp(App{Branch: "release", Deployments: &fakeDeployments{}})); err == nil || !strings.Contains(err.Error(), "DEPLOY_WEBHOOK_SECRET") {
		t.Errorf("got %v", err)
	}
	if _, err := New(Config{Insecure: true}, OneApp(App{Branch: "release", Deployments: &fakeDeployments{}})); err != nil {
		t.Errorf("insecure: %v", err)
	}
}

func TestAPIAuth(t *testing.T) {
	const token = "s3cr3t-api-token-xyz"
	tests := []struct {
		name, token, header string
		want                int
	}{
		{"no token configured", "", "Bearer x", 404},
		{"missing", token, "", 401},
		{"wrong", token, "Bearer " + token + "2", 401},
		{"prefix of it", token, "Bearer s3cr3t", 401},
		{"not bearer", token, "Basic " + token, 401},
		{"right", token, "Bearer " + token, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestServer(t, &fakeDeployments{}, func(c *Config) { c.APIToken = tt.token })
			r := httptest.NewRequest(http.MethodGet, "/api/deployments", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("code %d, want %d (%s)", w.Code, tt.want, w.Body)
			}
			if w.Code != 200 && strings.Contains(w.Body.String(), token) {
				t.Errorf("answer reveals the token: %s", w.Body)
			}
		})
	}
}

func TestAPIDeploy(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		submit   func(deploy.Request) (deploy.Ticket, error)
		want     int
		wantPush deploy.Push
		hosts    []string
	}{
		{"empty body", "", nil, 202, deploy.Push{Branch: "release"}, nil},
		{"commit and hosts", `{"commit":"abcdef1","hosts":["web2"]}`, nil, 202, deploy.Push{Branch: "release", Commit: "abcdef1"}, []string{"web2"}},
		{"unknown field", `{"comit":"abcdef1"}`, nil, 400, deploy.Push{}, nil},
		{"hostile commit", `{"commit":"$(touch /tmp/x)"}`, nil, 400, deploy.Push{}, nil},
		{"not on branch", `{"commit":"abcdef1"}`, func(deploy.Request) (deploy.Ticket, error) {
			return deploy.Ticket{}, &deploy.CommitError{Commit: "abcdef1", Branch: "release"}
		}, 422, deploy.Push{Branch: "release", Commit: "abcdef1"}, nil},
		{"unknown host", `{"hosts":["web9"]}`, func(deploy.Request) (deploy.Ticket, error) {
			return deploy.Ticket{}, &deploy.RequestError{Msg: `host "web9" is not in the hosts file`}
		}, 400, deploy.Push{Branch: "release"}, []string{"web9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDeployments{submit: tt.submit}
			r := httptest.NewRequest(http.MethodPost, "/api/deploy", strings.NewReader(tt.body))
			r.Header.Set("Authorization", "Bearer tok")
			code, out := serveJSON(newTestServer(t, f, nil), r)
			if code != tt.want {
				t.Fatalf("code %d, want %d (%v)", code, tt.want, out)
			}
			if tt.wantPush.Branch != "" {
				if len(f.reqs) != 1 || f.reqs[0].Push != tt.wantPush || f.reqs[0].Trigger != "api" || strings.Join(f.reqs[0].Hosts, ",") != strings.Join(tt.hosts, ",") {
					t.Errorf("submitted %+v", f.reqs)
				}
			} else if len(f.reqs) != 0 {
				t.Errorf("submitted %+v for a bad body", f.reqs)
			}
		})
	}
}

func TestAPIDeployments(t *testing.T) {
	now := time.Now()
	d := deploy.NewDeployment(deploy.Request{Trigger: "webhook", Provider: GitHub, Push: deploy.Push{Branch: "release"}, PayloadCommit: "p"}, now)
	d.Status = deploy.StatusFailed
	d.Release.Commit = strings.Repeat("b", 40)
	d.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusFailed, Steps: []deploy.StepResult{
		{Name: "pip", Status: deploy.StatusFailed, Started: now, Duration: time.Second, Output: "ERROR: nope"},
	}}}
	f := &fakeDeployments{deps: map[string]*deploy.Deployment{d.ID: d}}
	h := newTestServer(t, f, nil)
	get := func(path string) (int, map[string]any) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Authorization", "Bearer tok")
		return serveJSON(h, r)
	}
	code, out := get("/api/deployments/" + d.ID)
	if code != 200 || out["commit"] != d.Release.Commit || out["payload_commit"] != "p" || out["status"] != "failed" {
		t.Fatalf("%d %v", code, out)
	}
	host := out["hosts"].([]any)[0].(map[string]any)
	step := host["steps"].([]any)[0].(map[string]any)
	if host["host"] != "web1" || step["step"] != "pip" || step["output_tail"] != "ERROR: nope" {
		t.Errorf("host detail %v", host)
	}
	if code, _ := get("/api/deployments/nope"); code != 404 {
		t.Errorf("unknown id: %d", code)
	}
	code, out = get("/api/deployments")
	if list := out["deployments"].([]any); code != 200 || len(list) != 1 {
		t.Errorf("list: %d %v", code, out)
	}
}

func TestHealthz(t *testing.T) {
	last := deploy.NewDeployment(deploy.Request{Trigger: "cli", Push: deploy.Push{Branch: "release"}}, time.Now())
	last.Status, last.Release.Commit = deploy.StatusSucceeded, strings.Repeat("c", 40)
	f := &fakeDeployments{health: deploy.Health{QueueLength: 2, Last: last}}
	code, out := serveJSON(newTestServer(t, f, func(c *Config) { c.Version = "v9" }), httptest.NewRequest(http.MethodGet, "/healthz", nil))
	ld, _ := out["last_deployment"].(map[string]any)
	if code != 200 || out["status"] != "ok" || out["version"] != "v9" || out["queue_length"] != float64(2) || ld["id"] != last.ID || ld["status"] != "succeeded" {
		t.Errorf("healthy: %d %v", code, out)
	}

	f.health.Stuck = "deployment x has made no progress for 11m"
	code, out = serveJSON(newTestServer(t, f, nil), httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if code != 503 || !strings.Contains(out["reason"].(string), "no progress") {
		t.Errorf("stuck: %d %v", code, out)
	}

	f.health.Stuck = ""
	dir := filepath.Join(t.TempDir(), "gone")
	code, out = serveJSON(newTestServer(t, f, func(c *Config) { c.StateDir = dir }), httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if code != 503 || !strings.Contains(out["reason"].(string), "not writable") {
		t.Errorf("state dir missing: %d %v", code, out)
	}
}
