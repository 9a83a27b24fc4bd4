package deploy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProbe: what one health request counts as healthy, with the real
// client the deployer uses (no redirects followed).
func TestProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() != "pushdeploy-health-check" {
			http.Error(w, "wrong user agent "+r.UserAgent(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("please log in")) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/login", http.StatusFound) })
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"db": "down"}`, http.StatusServiceUnavailable)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		path string
		want string // "" healthy, else a piece of the error
	}{
		{"/ok", ""},
		{"/redirect", "answered 302 Found, a redirect to /login, which is not followed: point DEPLOY_HEALTH_URL at"},
		{"/sick", `answered 503 Service Unavailable: {"db": "down"}`},
		{"/missing", "answered 404 Not Found: 404 page not found"},
	} {
		err := probe(context.Background(), defaultHealthClient, srv.URL+tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want healthy", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.path, err, tc.want)
		}
	}
}
