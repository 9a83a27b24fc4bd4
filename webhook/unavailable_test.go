package webhook

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// TestDatabaseDownIs503: when the deployment queue's database cannot be
// reached, nothing is queued: a webhook, an API deploy and an API
// rollback are answered 503 with Retry-After (the forge tries again),
// naming the database as the worker names it (without its password).
func TestDatabaseDownIs503(t *testing.T) {
	const db = "postgres://deployer:xxxxx@127.0.0.1:5432/deploys"
	down := func(deploy.Request) (deploy.Ticket, error) {
		return deploy.Ticket{}, &deploy.UnavailableError{Database: db, Err: errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")}
	}
	api := func(path, body string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer tok")
			r.Header.Set("Content-Type", "application/json")
			return r
		}
	}
	for _, tc := range []struct {
		name string
		req  func() *http.Request
	}{
		{"webhook", func() *http.Request {
			return signedGitHub(githubPush("refs/heads/release", strings.Repeat("a", 40)), "")
		}},
		{"api deploy", api("/api/deploy", "{}")},
		{"api rollback", api("/api/rollback", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestServer(t, &fakeDeployments{submit: down}, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req())
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", w.Code, w.Body)
			}
			if got := w.Header().Get("Retry-After"); got == "" {
				t.Errorf("no Retry-After")
			}
			if body := w.Body.String(); !strings.Contains(body, db) || !strings.Contains(body, "nothing was queued") {
				t.Errorf("body %s does not name the database and say nothing was queued", body)
			}
		})
	}
}
