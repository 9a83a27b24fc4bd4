package webhook

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pushFixtures are a push to the release branch from each provider, and
// the repository (full name) it comes from.
var pushFixtures = []struct{ provider, kind, file, repo string }{
	{BitbucketCloud, "repo:push", "bitbucket-cloud-push.json", "team/app"},
	{BitbucketServer, "repo:refs_changed", "bitbucket-server-refs-changed.json", "OPS/app"},
	{GitHub, "push", "github-push.json", "team/app"},
	{GitLab, "Push Hook", "gitlab-push.json", "team/app"},
	{Gitea, "push", "gitea-push.json", "team/app"},
}

// signedRequest is a POST /webhook of body as provider signs it with secret.
func signedRequest(provider, kind string, body []byte, secret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
	r.Header = signedHeaders(provider, kind, body, secret)
	return r
}

// TestWebhookRepo: with DEPLOY_WEBHOOK_REPO set, a correctly signed push
// to the release branch from another repository is answered 200 ignored
// and submits nothing; one from the configured repository (in any case) is
// queued.
func TestWebhookRepo(t *testing.T) {
	for _, p := range pushFixtures {
		body := readFixture(t, p.file)
		for _, tt := range []struct {
			name, repo string
			queued     bool
		}{
			{"configured repository", strings.ToUpper(p.repo), true},
			{"another repository", p.repo + "-fork", false},
			{"any repository", "", true},
		} {
			t.Run(p.provider+"/"+tt.name, func(t *testing.T) {
				f := &fakeDeployments{}
				h := newAppServer(t, nil, App{Secret: secret, Branch: "release", Repo: tt.repo, Deployments: f})
				code, out := serveJSON(h, signedRequest(p.provider, p.kind, body, secret))
				if !tt.queued {
					msg, _ := out["message"].(string)
					if code != http.StatusOK || out["status"] != "ignored" || out["reason"] != ReasonOtherRepo ||
						!strings.Contains(msg, "push to repository "+p.repo+", not "+tt.repo) {
						t.Errorf("push from %s with DEPLOY_WEBHOOK_REPO=%s: %d %v, want 200 ignored (%s)", p.repo, tt.repo, code, out, ReasonOtherRepo)
					}
					if len(f.reqs) != 0 {
						t.Errorf("submitted %+v for a push from another repository", f.reqs)
					}
					return
				}
				if code != http.StatusAccepted || out["status"] != "queued" {
					t.Errorf("push from %s with DEPLOY_WEBHOOK_REPO=%q: %d %v, want 202 queued", p.repo, tt.repo, code, out)
				}
				if len(f.reqs) != 1 || f.reqs[0].Provider != p.provider || f.reqs[0].DeliveryID != testDeliveryID[p.provider] {
					t.Errorf("submitted %+v, want one request of %s delivery %s", f.reqs, p.provider, testDeliveryID[p.provider])
				}
			})
		}
	}
}

// TestWebhookLog captures the JSON log line of each webhook decision: it
// names our own request id (the one answered in X-Request-Id, never the
// client's), the provider, event, delivery id, the branch once the
// signature holds, and the decision with its reason.
func TestWebhookLog(t *testing.T) {
	sha := strings.Repeat("a", 40)
	const clientID = "chosen-by-the-client"
	bbServer := readFixture(t, "bitbucket-server-refs-changed.json")
	tests := []struct {
		name string
		req  func() *http.Request
		code int
		// want are the fields of the line (request_id is checked apart);
		// the ones it must not have are absent.
		want   map[string]any
		absent []string
	}{
		{"queued", func() *http.Request { return signedGitHub(githubPush("refs/heads/release", sha), "") }, http.StatusAccepted,
			map[string]any{"level": "INFO", "msg": "webhook queued", "provider": GitHub, "event": "push", "delivery": "abc-123",
				"repo": "team/app", "branch": "release", "decision": "queued", "commit": sha, "deployment": "dep-1"},
			[]string{"reason"}},
		{"ignored: other branch", func() *http.Request { return signedGitHub(githubPush("refs/heads/main", sha), "") }, http.StatusOK,
			map[string]any{"level": "INFO", "msg": "webhook ignored", "provider": GitHub, "event": "push", "delivery": "abc-123",
				"repo": "team/app", "branch": "main", "decision": "ignored", "reason": ReasonOtherBranch,
				"detail": "the push changed refs/heads/main, not branch release"},
			[]string{"commit", "deployment"}},
		{"rejected: bad signature", func() *http.Request {
			return signedGitHub(githubPush("refs/heads/release", sha), "sha256="+strings.Repeat("0", 64))
		}, http.StatusUnauthorized,
			map[string]any{"level": "WARN", "msg": "webhook rejected", "provider": GitHub, "event": "push", "delivery": "abc-123",
				"decision": "rejected", "reason": "X-Hub-Signature-256: signature does not match the body"},
			// An unverified body is not read: no repository, no branch.
			[]string{"repo", "branch", "commit", "deployment"}},
		{"bitbucket server: X-Request-Id is the delivery", func() *http.Request {
			return signedRequest(BitbucketServer, "repo:refs_changed", bbServer, secret)
		}, http.StatusAccepted,
			map[string]any{"level": "INFO", "msg": "webhook queued", "provider": BitbucketServer, "event": "repo:refs_changed",
				"delivery": testDeliveryID[BitbucketServer], "repo": "OPS/app", "branch": "release", "decision": "queued",
				"commit": releaseTip, "deployment": "dep-1"},
			[]string{"reason"}},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := newTestServer(t, &fakeDeployments{}, func(c *Config) {
				c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			r := tt.req()
			if r.Header.Get("X-Request-Id") == "" {
				r.Header.Set("X-Request-Id", clientID)
			}
			sent := r.Header.Get("X-Request-Id")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.code {
				t.Fatalf("code %d, want %d (%s)", w.Code, tt.code, w.Body)
			}
			line := webhookLine(t, logs.String())

			id, _ := line["request_id"].(string)
			if id == "" || id != w.Header().Get("X-Request-Id") {
				t.Errorf("request_id %q, want the X-Request-Id answered (%q)", id, w.Header().Get("X-Request-Id"))
			}
			if id == sent {
				t.Errorf("request_id %q is the client's X-Request-Id: it must be our own", id)
			}
			if other, ok := seen[id]; ok {
				t.Errorf("request_id %q given to %q too", id, other)
			}
			seen[id] = tt.name

			got := map[string]any{}
			for k := range tt.want {
				if v, ok := line[k]; ok {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("log line mismatch (-want +got):\n%s\nline: %v", diff, line)
			}
			for _, k := range tt.absent {
				if v, ok := line[k]; ok {
					t.Errorf("log line has %s=%v, want none", k, v)
				}
			}
		})
	}
}

// webhookLine returns the one log line whose message starts with
// "webhook", decoded (the access log's "http" lines are skipped).
func webhookLine(t *testing.T, logs string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, "webhook") {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d webhook log lines, want 1:\n%s", len(found), logs)
	}
	return found[0]
}

// TestPushedBranch: the branch a push is logged under.
func TestPushedBranch(t *testing.T) {
	br := func(name string) Change { return Change{Ref: "refs/heads/" + name, Branch: name, Commit: releaseTip} }
	tag := Change{Ref: "refs/tags/v1", Tag: true, Commit: releaseTip}
	tests := []struct {
		name    string
		changes []Change
		want    string
	}{
		{"none", nil, ""},
		{"tags only", []Change{tag}, ""},
		{"the release branch", []Change{br("release")}, "release"},
		{"the release branch among others", []Change{br("main"), tag, br("release")}, "release"},
		{"the release branch deleted", []Change{{Ref: "refs/heads/release", Branch: "release", Deleted: true}}, "release"},
		{"others", []Change{br("main"), tag, br("dev"), br("main")}, "main,dev"},
		{"many others", []Change{br("a"), br("b"), br("c"), br("d"), br("e"), br("f")}, "a,b,c,d,e,…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pushedBranch(&Event{Changes: tt.changes}, "release"); got != tt.want {
				t.Errorf("pushedBranch: got %q, want %q", got, tt.want)
			}
		})
	}
}
