package webhook

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// countingMetrics records WebhookAnswered calls; its handler answers a
// fixed text.
type countingMetrics struct {
	mu     sync.Mutex
	counts map[string]int // "provider outcome" -> requests
}

func (m *countingMetrics) WebhookAnswered(provider, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts[provider+" "+outcome]++
}

func (m *countingMetrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "pushdeploy_up 1")
	})
}

// TestWebhookOutcomesCounted sends one request of each kind through the
// real handler and checks each is counted once, with its provider and the
// outcome its answer reflects.
func TestWebhookOutcomesCounted(t *testing.T) {
	m := &countingMetrics{counts: map[string]int{}}
	f := &fakeDeployments{}
	tickets := []deploy.Ticket{
		{ID: "d1", Status: "queued"}, {ID: "d1", Status: "coalesced"}, {ID: "d1", Status: "duplicate"},
	}
	var errs []error
	f.submit = func(deploy.Request) (deploy.Ticket, error) {
		if len(errs) > 0 {
			err := errs[0]
			errs = errs[1:]
			return deploy.Ticket{}, err
		}
		t := tickets[0]
		tickets = tickets[1:]
		return t, nil
	}
	h := newTestServer(t, f, func(c *Config) { c.Metrics = m; c.BodyLimit = 4 << 10 })

	push := githubPush("refs/heads/release", strings.Repeat("a", 40))
	for _, tc := range []struct {
		name string
		req  *http.Request
		code int
	}{
		{"queued", signedGitHub(push, ""), http.StatusAccepted},
		{"coalesced", signedGitHub(push, ""), http.StatusAccepted},
		{"duplicate", signedGitHub(push, ""), http.StatusOK},
		{"other branch", signedGitHub(githubPush("refs/heads/main", strings.Repeat("a", 40)), ""), http.StatusOK},
		{"bad signature", signedGitHub(push, "sha256="+strings.Repeat("0", 64)), http.StatusUnauthorized},
		{"unsigned", signedGitHub(push, "-"), http.StatusUnauthorized},
		{"malformed", signedGitHub([]byte("{"), ""), http.StatusBadRequest},
		{"too large", signedGitHub(bytes.Repeat([]byte(" "), 8<<10), ""), http.StatusRequestEntityTooLarge},
		{"no provider", httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader("{}")), http.StatusBadRequest},
	} {
		if code, out := serveJSON(h, tc.req); code != tc.code {
			t.Errorf("%s: %d %v, want %d", tc.name, code, out, tc.code)
		}
	}
	errs = []error{deploy.ErrQueueFull, io.ErrUnexpectedEOF}
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusBadGateway} {
		if got, out := serveJSON(h, signedGitHub(push, "")); got != code {
			t.Errorf("refused submit: %d %v, want %d", got, out, code)
		}
	}

	want := map[string]int{
		"github queued": 1, "github coalesced": 1, "github duplicate": 1, "github ignored": 1,
		"github unauthorized": 2, "github bad_request": 1, "github too_large": 1, " bad_request": 1,
		"github unavailable": 1, "github error": 1,
	}
	if diff := cmp.Diff(want, m.counts); diff != "" {
		t.Errorf("counted outcomes (-want +got):\n%s", diff)
	}
}

// TestMetricsEndpoint: /metrics is served without a token when metrics
// are on, and does not exist when they are off.
func TestMetricsEndpoint(t *testing.T) {
	on := newTestServer(t, &fakeDeployments{}, func(c *Config) { c.Metrics = &countingMetrics{counts: map[string]int{}} })
	w := httptest.NewRecorder()
	on.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK || w.Body.String() != "pushdeploy_up 1\n" {
		t.Errorf("GET /metrics with metrics: %d %q", w.Code, w.Body)
	}
	off := newTestServer(t, &fakeDeployments{}, nil)
	w = httptest.NewRecorder()
	off.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code == http.StatusOK {
		t.Errorf("GET /metrics without metrics: %d, want an error", w.Code)
	}
}

// TestGuardRefusalsCounted: webhooks refused by the allow-list or the
// rate limit, before the receiver reads them, are counted too.
func TestGuardRefusalsCounted(t *testing.T) {
	m := &countingMetrics{counts: map[string]int{}}
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) {
		c.Metrics = m
		c.Guard.WebhookAllow = prefixes(t, "10.0.0.0/8")
		c.Guard.RateLimit, c.Guard.RateBurst = 0.001, 1
	})
	push := githubPush("refs/heads/release", strings.Repeat("a", 40))
	for _, tc := range []struct {
		addr string
		code int
	}{
		{"192.0.2.8:5000", http.StatusForbidden},
		{"10.1.2.3:5000", http.StatusAccepted},
		{"10.1.2.3:5000", http.StatusTooManyRequests},
	} {
		if code, out := serveJSON(h, from(signedGitHub(push, ""), tc.addr)); code != tc.code {
			t.Errorf("from %s: %d %v, want %d", tc.addr, code, out, tc.code)
		}
	}
	want := map[string]int{"github forbidden": 1, "github queued": 1, "github rate_limited": 1}
	if diff := cmp.Diff(want, m.counts); diff != "" {
		t.Errorf("counted outcomes (-want +got):\n%s", diff)
	}
}
