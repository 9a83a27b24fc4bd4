package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

const pageToken = "tok-SECRET-page-7f3a"

// hostileDeployment carries markup in every field a forge or a requester
// controls.
func hostileDeployment() *deploy.Deployment {
	d := deploy.NewDeployment(deploy.Request{
		Trigger: "webhook", Provider: "github", Actor: `<script>alert("actor")</script>`,
		Push: deploy.Push{Branch: `rel"><img src=x onerror=alert(1)>`},
	}, time.Now())
	d.Release.Commit = `"><script>alert('commit')</script>`
	d.Status = deploy.StatusFailed
	d.Started, d.Finished = time.Now().Add(-90*time.Second), time.Now()
	d.Err = errors.New(`pip: <b>boom</b>`)
	d.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web<1>"}, Status: deploy.StatusFailed,
		Steps: []deploy.StepResult{{Name: "pip", Status: deploy.StatusFailed, Err: errors.New(`"onmouseover="x`)}}}}
	return d
}

func pageServer(t *testing.T, token string, public bool, f *fakeDeployments) *Server {
	t.Helper()
	if f == nil {
		f = &fakeDeployments{deps: map[string]*deploy.Deployment{}}
	}
	s, err := New(Config{APIToken: token, StatusPublic: public, StateDir: t.TempDir()}, testApp(f))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(h http.Handler, method, path string, body string, mod func(*http.Request)) *httptest.ResponseRecorder {
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func signIn(t *testing.T, h http.Handler) *http.Cookie {
	t.Helper()
	w := do(h, http.MethodPost, "/login", url.Values{"token": {pageToken}, "next": {"/deployments/x"}}.Encode(), nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/deployments/x" {
		t.Fatalf("sign-in: %d to %q, want 303 to /deployments/x", w.Code, w.Header().Get("Location"))
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("sign-in set %d cookies", len(cookies))
	}
	return cookies[0]
}

// TestPageSignIn walks the cookie flow: the page asks for the token, a
// wrong one is refused, the right one gives a cookie that opens the pages
// and the stream but never the API's state-changing calls.
func TestPageSignIn(t *testing.T) {
	s := pageServer(t, pageToken, false, nil)
	h := s.Handler()

	w := do(h, http.MethodGet, "/", "", nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2F" {
		t.Fatalf("GET / signed out: %d to %q, want 303 to the sign-in form", w.Code, w.Header().Get("Location"))
	}
	if w := do(h, http.MethodGet, "/login?next=//evil.example", "", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `name="token"`) || strings.Contains(w.Body.String(), "evil.example") {
		t.Errorf("sign-in form: %d, with a foreign next kept: %q", w.Code, w.Body.String())
	}
	if w := do(h, http.MethodPost, "/login", url.Values{"token": {"wrong"}}.Encode(), nil); w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Errorf("wrong token: %d with cookies %v, want 401 and no cookie", w.Code, w.Result().Cookies())
	}

	ck := signIn(t, h)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over http", ck)
	}
	if strings.Contains(ck.Value, pageToken) || ck.Value == "" {
		t.Errorf("cookie value %q holds the token", ck.Value)
	}
	https := do(h, http.MethodPost, "/login", url.Values{"token": {pageToken}}.Encode(), func(r *http.Request) {
		r.RemoteAddr = "127.0.0.1:40000" // a TLS proxy on this machine
		r.Header.Set("X-Forwarded-Proto", "https")
	})
	if c := https.Result().Cookies(); len(c) != 1 || !c[0].Secure {
		t.Errorf("sign-in over https: cookie not Secure: %v", c)
	}

	withCookie := func(r *http.Request) { r.AddCookie(ck) }
	if w := do(h, http.MethodGet, "/", "", withCookie); w.Code != 200 || !strings.Contains(w.Body.String(), "Deployments") {
		t.Errorf("GET / signed in: %d", w.Code)
	}
	if w := do(h, http.MethodGet, "/releases.json", "", withCookie); w.Code != 200 {
		t.Errorf("GET /releases.json signed in: %d %s", w.Code, w.Body)
	}
	if w := do(h, http.MethodGet, "/api/deployments/nope/events", "", withCookie); w.Code != http.StatusNotFound {
		t.Errorf("API stream with the cookie: %d, want 404 (through the guard, to an unknown id)", w.Code)
	}
	for _, path := range []string{"/api/deploy", "/api/rollback"} {
		if w := do(h, http.MethodPost, path, "", withCookie); w.Code != http.StatusUnauthorized {
			t.Errorf("POST %s with the cookie only: %d, want 401 (CSRF)", path, w.Code)
		}
	}
	if w := do(h, http.MethodGet, "/api/deployments", "", withCookie); w.Code != http.StatusUnauthorized {
		t.Errorf("GET /api/deployments with the cookie only: %d, want 401 (the API takes bearer tokens)", w.Code)
	}

	// A tampered, expired or other-token cookie does not count.
	other := pageServer(t, "another-token", false, nil)
	for name, v := range map[string]string{
		"tampered":    tamper(ck.Value),
		"expired":     s.newSession(time.Now().Add(-sessionTTL - time.Minute)),
		"other token": other.newSession(time.Now()),
		"garbage":     "v1.x.y",
	} {
		w := do(h, http.MethodGet, "/", "", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: sessionCookie, Value: v}) })
		if w.Code != http.StatusSeeOther {
			t.Errorf("%s cookie: %d, want the sign-in redirect", name, w.Code)
		}
	}
	// The bearer header opens the page too (scripts, curl).
	if w := do(h, http.MethodGet, "/", "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+pageToken) }); w.Code != 200 {
		t.Errorf("GET / with the bearer token: %d", w.Code)
	}
	if w := do(h, http.MethodPost, "/logout", "", withCookie); w.Code != http.StatusSeeOther || w.Result().Cookies()[0].MaxAge >= 0 {
		t.Errorf("sign out: %d %v, want the cookie cleared", w.Code, w.Result().Cookies())
	}
}

// tamper changes the last hex digit of a session's MAC, always to a
// different one (a fixed "00" would leave one MAC in 256 unchanged).
func tamper(v string) string {
	last := v[len(v)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	return v[:len(v)-1] + string(repl)
}

// TestPageAccessModes: without a token and not public the page says how
// to turn it on; public pages need no sign-in, and without a token have
// no buttons.
func TestPageAccessModes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		token       string
		public      bool
		wantCode    int
		wantText    string
		wantButtons bool
	}{
		{"off", "", false, http.StatusNotFound, "DEPLOY_STATUS_PUBLIC=true", false},
		{"public, no API", "", true, http.StatusOK, "Deployments", false},
		{"public with API", pageToken, true, http.StatusOK, "Deployments", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := pageServer(t, tc.token, tc.public, nil).Handler()
			w := do(h, http.MethodGet, "/", "", nil)
			body := w.Body.String()
			if w.Code != tc.wantCode || !strings.Contains(body, tc.wantText) {
				t.Fatalf("GET /: %d, want %d with %q:\n%s", w.Code, tc.wantCode, tc.wantText, body)
			}
			if got := strings.Contains(body, `data-url="/api/deploy"`); got != tc.wantButtons {
				t.Errorf("deploy button shown: %v, want %v", got, tc.wantButtons)
			}
			want := http.StatusOK
			if !tc.public {
				want = http.StatusNotFound
			}
			if w := do(h, http.MethodGet, "/releases.json", "", nil); w.Code != want {
				t.Errorf("GET /releases.json: %d, want %d", w.Code, want)
			}
		})
	}
}

// TestPageHeadersAndEscaping renders every page with hostile strings in
// the deployment: everything is escaped, the token never appears, and the
// security headers are set.
func TestPageHeadersAndEscaping(t *testing.T) {
	d := hostileDeployment()
	f := &fakeDeployments{deps: map[string]*deploy.Deployment{d.ID: d}}
	h := pageServer(t, pageToken, false, f).Handler()
	auth := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+pageToken) }
	for _, path := range []string{"/", "/deployments/" + d.ID, "/login", "/deployments/<script>x"} {
		w := do(h, http.MethodGet, path, "", auth)
		body := w.Body.String()
		if w.Code != 200 && w.Code != 404 {
			t.Errorf("%s: %d", path, w.Code)
		}
		if strings.Contains(body, pageToken) {
			t.Errorf("%s: the token is in the page", path)
		}
		for _, raw := range []string{"<script>alert", "<img src=x", "<b>boom", `"onmouseover="`, "<script>x"} {
			if strings.Contains(body, raw) {
				t.Errorf("%s: unescaped %q in the page", path, raw)
			}
		}
		hd := w.Header()
		if csp := hd.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("Referrer-Policy") == "" {
			t.Errorf("%s: headers %v", path, hd)
		}
	}
	w := do(h, http.MethodGet, "/deployments/"+d.ID, "", auth)
	if !strings.Contains(w.Body.String(), "&lt;script&gt;alert(&#34;actor&#34;)") {
		t.Errorf("the actor is not shown escaped:\n%s", w.Body)
	}
	if !strings.Contains(w.Body.String(), `data-host="web&lt;1&gt;"`) {
		t.Errorf("the host is not shown escaped")
	}
	for _, name := range []string{"page.js", "page.css"} {
		if w := do(h, http.MethodGet, "/static/"+name, "", nil); w.Code != 200 || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("/static/%s: %d", name, w.Code)
		}
	}
	if w := do(h, http.MethodGet, "/static/..%2Fpage.go", "", nil); w.Code != 404 {
		t.Errorf("/static/ outside its folder: %d", w.Code)
	}
}

// TestPageReleasesAreShared: the hosts are asked once for many page loads.
func TestPageReleasesAreShared(t *testing.T) {
	var calls atomic.Int32
	f := &fakeDeployments{deps: map[string]*deploy.Deployment{}, releases: func() ([]deploy.HostReleases, error) {
		calls.Add(1)
		time.Sleep(50 * time.Millisecond)
		return []deploy.HostReleases{{Host: deploy.Host{Name: "web1"}, Current: "20261125183400-1a2b3c4"}}, nil
	}}
	s := pageServer(t, "", true, f)
	h := s.Handler()
	done := make(chan string, 5)
	for range 5 {
		go func() { done <- do(h, http.MethodGet, "/releases.json", "", nil).Body.String() }()
	}
	for range 5 {
		if body := <-done; !strings.Contains(body, "20261125183400-1a2b3c4") {
			t.Errorf("releases: %s", body)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the hosts were asked %d times, want once", n)
	}
	app, _ := s.single()
	if _, err := s.releases(context.Background(), app); err != nil || calls.Load() != 1 {
		t.Errorf("a fresh listing was not reused (%v, %d calls)", err, calls.Load())
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/deployments/x": "/deployments/x", "": "/", "//evil.example": "/", `/\evil.example`: "/",
		"https://evil.example": "/", "javascript:alert(1)": "/",
		// Browsers drop tabs and line breaks anywhere in a URL, and read
		// a backslash as a slash.
		"/\t/evil.example": "/", "/\n/evil.example": "/", "/\r\n/evil.example": "/", "\t//evil.example": "/",
		"/x\\..\\\\evil.example": "/", "/\x00/evil.example": "/", "/\x7f": "/",
		"/deployments/x?next=%2F%2Fevil": "/deployments/x?next=%2F%2Fevil", "/déploiements": "/déploiements",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPageActorOnce: a deployment whose actor is its trigger (the API's
// "api") reads "api", not "api by api"; another actor is named.
func TestPageActorOnce(t *testing.T) {
	for _, tc := range []struct{ actor, want, not string }{
		{"api", "<dd>api</dd>", "api by api"},
		{"Ada", "api by Ada", ""},
	} {
		d := hostileDeployment()
		d.Request.Trigger, d.Request.Actor, d.Request.Provider = deploy.TriggerAPI, tc.actor, ""
		f := &fakeDeployments{deps: map[string]*deploy.Deployment{d.ID: d}}
		h := pageServer(t, pageToken, false, f).Handler()
		w := do(h, http.MethodGet, "/deployments/"+d.ID, "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+pageToken) })
		body := w.Body.String()
		if !strings.Contains(body, tc.want) || (tc.not != "" && strings.Contains(body, tc.not)) {
			t.Errorf("actor %q: want %q (and not %q) in the page", tc.actor, tc.want, tc.not)
		}
	}
}
