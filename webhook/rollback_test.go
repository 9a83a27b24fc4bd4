package webhook

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

func TestAPIRollback(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		submit      func(deploy.Request) (deploy.Ticket, error)
		want        int
		wantRelease string
		submitted   bool
	}{
		{"empty body: previous release", "", nil, 202, "", true},
		{"to a release", `{"release":"20261125183400-1a2b3c4"}`, nil, 202, "20261125183400-1a2b3c4", true},
		{"unknown field", `{"to":"20261125183400-1a2b3c4"}`, nil, 400, "", false},
		{"dot dot", `{"release":"../x"}`, nil, 400, "", false},
		{"slash", `{"release":"a/b"}`, nil, 400, "", false},
		{"command", `{"release":"$(id)"}`, nil, 400, "", false},
		{"queue full", "", func(deploy.Request) (deploy.Ticket, error) { return deploy.Ticket{}, deploy.ErrQueueFull }, 503, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDeployments{submit: tt.submit}
			r := httptest.NewRequest(http.MethodPost, "/api/rollback", strings.NewReader(tt.body))
			r.Header.Set("Authorization", "Bearer tok")
			code, out := serveJSON(newTestServer(t, f, nil), r)
			if code != tt.want {
				t.Fatalf("code %d, want %d (%v)", code, tt.want, out)
			}
			if !tt.submitted {
				if len(f.reqs) != 0 {
					t.Errorf("submitted %+v for a bad body", f.reqs)
				}
				return
			}
			if len(f.reqs) != 1 {
				t.Fatalf("submitted %+v", f.reqs)
			}
			got := f.reqs[0]
			if got.Action != "rollback" || got.Trigger != "api" || got.Release != tt.wantRelease || got.Push != (deploy.Push{}) {
				t.Errorf("submitted %+v", got)
			}
			if code == 202 && (out["status"] != "queued" || out["deployment"] != "dep-1") {
				t.Errorf("answer %v", out)
			}
		})
	}
	// A token is configured ("tok") but the request sends no
	// Authorization header: 401, not the 404 of an API that is off.
	r := httptest.NewRequest(http.MethodPost, "/api/rollback", nil)
	if code, _ := serveJSON(newTestServer(t, &fakeDeployments{}, nil), r); code != 401 {
		t.Errorf("without a token: %d, want 401", code)
	}
}

func TestAPIReleases(t *testing.T) {
	when := time.Date(2026, 11, 25, 18, 34, 0, 0, time.UTC)
	sha := strings.Repeat("a", 40)
	f := &fakeDeployments{releases: func() ([]deploy.HostReleases, error) {
		return []deploy.HostReleases{
			{Host: deploy.Host{Name: "web1"}, Current: "20261125183400-aaaaaaa", Releases: []deploy.ReleaseInfo{
				{Name: "20261125183400-aaaaaaa", Time: when, Commit: sha, Complete: true, Current: true},
				{Name: "20261125180000-bbbbbbb", Time: when.Add(-34 * time.Minute), Missing: []string{"REVISION"}},
			}},
			{Host: deploy.Host{Name: "web2"}, Err: errors.New("host web2: connect: connection refused")},
			{Host: deploy.Host{Name: "web3"}, Current: "20261125180000-bbbbbbb"},
		}, nil
	}}
	r := httptest.NewRequest(http.MethodGet, "/api/releases", nil)
	r.Header.Set("Authorization", "Bearer tok")
	code, out := serveJSON(newTestServer(t, f, nil), r)
	if code != 200 {
		t.Fatalf("code %d: %v", code, out)
	}
	if out["disagree"] != true {
		t.Errorf("disagree %v, want true (web1 and web3 differ)", out["disagree"])
	}
	hosts, _ := out["hosts"].([]any)
	if len(hosts) != 3 {
		t.Fatalf("hosts %v", out["hosts"])
	}
	h1 := hosts[0].(map[string]any)
	rels := h1["releases"].([]any)
	first := rels[0].(map[string]any)
	if h1["host"] != "web1" || h1["current"] != "20261125183400-aaaaaaa" || len(rels) != 2 ||
		first["commit"] != sha || first["current"] != true || first["complete"] != true || first["time"] != "2026-11-25T18:34:00Z" {
		t.Errorf("web1: %v", h1)
	}
	if second := rels[1].(map[string]any); second["complete"] != false || second["commit"] != "" {
		t.Errorf("incomplete release: %v", second)
	}
	if h2 := hosts[1].(map[string]any); !strings.Contains(h2["error"].(string), "connection refused") {
		t.Errorf("web2: %v", h2)
	}

	f.releases = func() ([]deploy.HostReleases, error) { return nil, errors.New("deployer is missing Dialer") }
	r = httptest.NewRequest(http.MethodGet, "/api/releases", nil)
	r.Header.Set("Authorization", "Bearer tok")
	if code, _ := serveJSON(newTestServer(t, f, nil), r); code != 500 {
		t.Errorf("deployer error: %d, want 500", code)
	}
}
