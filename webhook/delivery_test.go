package webhook

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLongDeliveryIDIsRefused: a delivery id over 64 characters, in any
// provider's delivery header, is answered 400 before the body is read
// (the client sends none here), and nothing is queued or remembered; one
// of 64 is taken.
func TestLongDeliveryIDIsRefused(t *testing.T) {
	s, w := openServer(t, func(c *Config) { c.Limits.BodyTimeout, c.Limits.ReadTimeout = 5*time.Second, 5*time.Second })
	for _, h := range []string{"X-GitHub-Delivery", "X-Request-UUID", "X-Gitlab-Event-UUID", "X-Gitea-Delivery"} {
		event := map[string]string{"X-GitHub-Delivery": "X-GitHub-Event: push", "X-Request-UUID": "X-Event-Key: repo:push",
			"X-Gitlab-Event-UUID": "X-Gitlab-Event: Push Hook", "X-Gitea-Delivery": "X-Gitea-Event: push"}[h]
		for _, n := range []int{65, 4 << 10} {
			req := "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n" + event + "\r\n" + h + ": " + strings.Repeat("7", n) + "\r\n\r\n"
			start := time.Now()
			resp := answerOn(t, dialFrom(t, s, "127.0.0.1"), req, time.Second)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s of %d characters: %d after %s, want 400 at once", h, n, resp.StatusCode, time.Since(start))
			}
		}
	}
	if n := len(w.List()); n != 0 {
		t.Errorf("%d deployments from refused delivery ids", n)
	}
	body := githubPush("refs/heads/release", strings.Repeat("a", 40))
	r := signedGitHub(body, "")
	r.Header.Set("X-GitHub-Delivery", strings.Repeat("7", 64))
	if code, _ := post(t, s, r.Header, body); code != http.StatusAccepted {
		t.Errorf("a 64-character delivery id: %d, want 202", code)
	}
}

// TestUnverifiedValuesAreCutInTheLog: header values and paths are logged
// before anything is verified; a long one is cut to 100 bytes and "…".
func TestUnverifiedValuesAreCutInTheLog(t *testing.T) {
	var logs bytes.Buffer // written in this goroutine: serveJSON calls the handler
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	long := "push decision=queued " + strings.Repeat("é", 30<<10)
	r := signedGitHub([]byte(`{}`), "sha256=00")
	r.Header.Set("X-GitHub-Event", long)
	r.Header.Set("X-GitHub-Delivery", "d-1")
	serveJSON(h, r)
	r = signedGitHub([]byte(`{}`), "sha256=00")
	r.URL.Path = "/webhook/" + strings.Repeat("p", 10<<10)
	serveJSON(h, r)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("log:\n%s", logs.String())
	}
	seen := map[string]bool{}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		for _, k := range []string{"event", "path"} {
			v, ok := rec[k].(string)
			if !ok || len(v) < 100 {
				continue
			}
			seen[k] = true
			if len(v) > 100+len("…") || !strings.HasSuffix(v, "…") {
				t.Errorf("%s logged as %d bytes (%q…), want it cut to 100 and …", k, len(v), v[:20])
			}
		}
	}
	if !seen["event"] || !seen["path"] {
		t.Errorf("the long event and path were not logged (seen %v):\n%s", seen, logs.String())
	}
}
