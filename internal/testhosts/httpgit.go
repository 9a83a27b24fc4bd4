package testhosts

import (
	"crypto/subtle"
	"encoding/pem"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// HTTPGit is a git server over smart HTTP(S) on 127.0.0.1: git's own
// git-http-backend run through net/http/cgi, behind HTTP basic auth. It
// needs no root. Its methods are safe for concurrent use.
type HTTPGit struct {
	// URL is the server's base URL, "https://127.0.0.1:PORT" (or http://),
	// without credentials; a repository ROOT/app.git is URL + "/app.git".
	URL string
	// CAFile is the path of the PEM certificate an https client must
	// trust (GIT_SSL_CAINFO for git); empty for http.
	CAFile string
	// CA is the same certificate, PEM-encoded.
	CA []byte

	mu       sync.Mutex
	requests []HTTPRequest
}

// HTTPRequest is one request the server answered.
type HTTPRequest struct {
	// URI is the path and query as the client sent them (still escaped).
	URI string
	// User is the basic-auth user, empty when none was sent.
	User string
	// Status is the answer's status code: 401 for missing or wrong
	// credentials.
	Status int
}

// ServeHTTPGit serves the bare repositories under root to the basic-auth
// user and password (both empty: to anyone), over TLS when tls is set, until
// the test ends. It skips the test (or fails it, with
// DEPLOY_TEST_DISALLOW_SKIP) when git-http-backend is missing.
func ServeHTTPGit(t testing.TB, root, user, password string, tls bool) *HTTPGit {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		SkipOrFail(t, "testhosts: git --exec-path: "+err.Error())
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		SkipOrFail(t, "testhosts: no git-http-backend: "+err.Error())
	}
	g := &HTTPGit{}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		status := http.StatusOK
		if user != "" || password != "" {
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
				status = http.StatusUnauthorized
			}
		}
		g.mu.Lock()
		g.requests = append(g.requests, HTTPRequest{URI: r.URL.RequestURI(), User: u, Status: status})
		g.mu.Unlock()
		if status != http.StatusOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", status)
			return
		}
		cgiHandler.ServeHTTP(w, r)
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
		g.CA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		g.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(g.CAFile, g.CA, 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// Requests returns the requests answered so far, oldest first.
func (g *HTTPGit) Requests() []HTTPRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]HTTPRequest(nil), g.requests...)
}
