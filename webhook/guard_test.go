package webhook

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(t *testing.T, s ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// from sends r as if from the socket peer addr (host:port).
func from(r *http.Request, addr string) *http.Request {
	r.RemoteAddr = addr
	return r
}

func TestWebhookAllowCIDRs(t *testing.T) {
	var logs bytes.Buffer
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) {
		c.Guard.WebhookAllow = prefixes(t, "10.0.0.0/8", "192.0.2.7/32", "2001:db8:1::/48")
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	push := githubPush("refs/heads/release", strings.Repeat("a", 40))
	for _, tt := range []struct {
		addr string
		want int
	}{
		{"10.1.2.3:5000", http.StatusAccepted},
		{"192.0.2.7:5000", http.StatusAccepted},
		{"[2001:db8:1:ffff::9]:5000", http.StatusAccepted},
		{"[::ffff:10.9.9.9]:5000", http.StatusAccepted}, // IPv4-mapped IPv6: its IPv4 counts
		{"192.0.2.8:5000", http.StatusForbidden},
		{"127.0.0.1:5000", http.StatusForbidden},
		{"[2001:db8:2::1]:5000", http.StatusForbidden},
		{"[::1]:5000", http.StatusForbidden},
	} {
		code, out := serveJSON(h, from(signedGitHub(push, ""), tt.addr))
		if code != tt.want {
			t.Errorf("webhook from %s: %d %v, want %d", tt.addr, code, out, tt.want)
		}
		if code == http.StatusForbidden && !strings.Contains(out["error"].(string), "may not call /webhook") {
			t.Errorf("webhook from %s: error %q", tt.addr, out["error"])
		}
	}
	if !strings.Contains(logs.String(), "remote=192.0.2.8") || !strings.Contains(logs.String(), "DEPLOY_WEBHOOK_ALLOW_CIDRS") {
		t.Errorf("the refusal is not logged with the address:\n%s", logs.String())
	}
	// The allow-list is for /webhook only: the API and health stay reachable.
	r := from(httptest.NewRequest(http.MethodGet, "/api/deployments", nil), "192.0.2.8:5000")
	r.Header.Set("Authorization", "Bearer tok")
	if code, out := serveJSON(h, r); code != http.StatusOK {
		t.Errorf("API from outside the webhook networks: %d %v", code, out)
	}
	if code, _ := serveJSON(h, from(httptest.NewRequest(http.MethodGet, "/healthz", nil), "192.0.2.8:5000")); code != http.StatusOK {
		t.Errorf("healthz from outside the webhook networks: %d", code)
	}
}

func TestWebhookAllowCIDRsIgnoresForwardedFor(t *testing.T) {
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) {
		c.Guard.WebhookAllow = prefixes(t, "10.0.0.0/8")
	})
	r := from(signedGitHub(githubPush("refs/heads/release", strings.Repeat("a", 40)), ""), "192.0.2.8:5000")
	r.Header.Set("X-Forwarded-For", "10.1.2.3")
	r.Header.Set("X-Real-IP", "10.1.2.3")
	if code, out := serveJSON(h, r); code != http.StatusForbidden {
		t.Errorf("a forged X-Forwarded-For without trusted proxies: %d %v, want 403", code, out)
	}
}

func TestTrustedProxies(t *testing.T) {
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) {
		c.Guard.WebhookAllow = prefixes(t, "10.0.0.0/8")
		c.Guard.TrustedProxies = prefixes(t, "127.0.0.1/32", "::1/128")
	})
	push := githubPush("refs/heads/release", strings.Repeat("a", 40))
	for _, tt := range []struct {
		name, peer, xff string
		want            int
	}{
		{"client through the proxy", "127.0.0.1:4000", "10.1.2.3", http.StatusAccepted},
		{"client through the IPv6 proxy", "[::1]:4000", "10.1.2.3", http.StatusAccepted},
		{"outsider through the proxy", "127.0.0.1:4000", "192.0.2.8", http.StatusForbidden},
		// The client forged the first entry; the proxy appended the real one.
		{"forged first entry", "127.0.0.1:4000", "10.1.2.3, 192.0.2.8", http.StatusForbidden},
		{"untrusted peer's header is ignored", "192.0.2.9:4000", "10.1.2.3", http.StatusForbidden},
		{"proxy without the header", "127.0.0.1:4000", "", http.StatusForbidden},
	} {
		r := from(signedGitHub(push, ""), tt.peer)
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if code, out := serveJSON(h, r); code != tt.want {
			t.Errorf("%s: %d %v, want %d", tt.name, code, out, tt.want)
		}
	}
}

func TestRateLimit(t *testing.T) {
	h := newTestServer(t, &fakeDeployments{}, func(c *Config) {
		c.Guard.RateLimit, c.Guard.RateBurst = 0.5, 3 // one every 2 s: the test never earns one back
	})
	push := githubPush("refs/heads/release", strings.Repeat("a", 40))
	webhookFrom := func(addr string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, from(signedGitHub(push, ""), addr))
		return w
	}
	for i := range 3 {
		if w := webhookFrom("192.0.2.1:1000"); w.Code != http.StatusAccepted {
			t.Fatalf("request %d of the burst: %d %s", i+1, w.Code, w.Body)
		}
	}
	w := webhookFrom("192.0.2.1:1001")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" || !strings.Contains(w.Body.String(), `"error":"too many requests from 192.0.2.1`) {
		t.Errorf("over the limit: %d Retry-After %q %s, want 429, Retry-After 2 and a JSON error", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	// Another address has its own bucket; so has another IPv6 /64, while
	// addresses in one /64 share theirs.
	if w := webhookFrom("192.0.2.2:1000"); w.Code != http.StatusAccepted {
		t.Errorf("another client: %d, want 202", w.Code)
	}
	for i := range 3 {
		if w := webhookFrom("[2001:db8:0:1::" + string(rune('1'+i)) + "]:1000"); w.Code != http.StatusAccepted {
			t.Errorf("IPv6 request %d: %d", i+1, w.Code)
		}
	}
	if w := webhookFrom("[2001:db8:0:1::99]:1000"); w.Code != http.StatusTooManyRequests {
		t.Errorf("a 4th request from the same /64: %d, want 429", w.Code)
	}
	if w := webhookFrom("[2001:db8:0:2::1]:1000"); w.Code != http.StatusAccepted {
		t.Errorf("another /64: %d, want 202", w.Code)
	}

	// The API has its own bucket, and counts wrong tokens too.
	api := func(token string) int {
		r := from(httptest.NewRequest(http.MethodGet, "/api/deployments", nil), "192.0.2.1:1000")
		r.Header.Set("Authorization", "Bearer "+token)
		code, _ := serveJSON(h, r)
		return code
	}
	if got := []int{api("wrong"), api("wrong"), api("tok"), api("tok")}; got[0] != 401 || got[1] != 401 || got[2] != 200 || got[3] != 429 {
		t.Errorf("API answers %v, want [401 401 200 429]", got)
	}
	// The status page's event stream counts like the API (it may be
	// public): refused without a session, until it is refused for the
	// rate.
	stream := func() int {
		code, _ := serveJSON(h, from(httptest.NewRequest(http.MethodGet, "/deployments/d1/events", nil), "192.0.2.7:1000"))
		return code
	}
	if got := []int{stream(), stream(), stream(), stream()}; got[0] != 401 || got[2] != 401 || got[3] != 429 {
		t.Errorf("page event stream answers %v, want [401 401 401 429]", got)
	}
	// Health checks and metrics are never limited.
	for range 5 {
		if code, _ := serveJSON(h, from(httptest.NewRequest(http.MethodGet, "/healthz", nil), "192.0.2.1:1000")); code != http.StatusOK {
			t.Fatalf("healthz: %d", code)
		}
	}
}

func TestNoRateLimitByDefault(t *testing.T) {
	h := newTestServer(t, &fakeDeployments{}, nil)
	push := githubPush("refs/heads/release", strings.Repeat("a", 40))
	for i := range 200 {
		if code, out := serveJSON(h, from(signedGitHub(push, ""), "192.0.2.1:1000")); code != http.StatusAccepted {
			t.Fatalf("request %d: %d %v", i, code, out)
		}
	}
}
