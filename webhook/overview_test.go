package webhook

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

var updatePages = flag.Bool("update-pages", false, "rewrite testdata/page-*.html from the pages as served now")

// onePageFixture is a deployer of one app with two finished deployments,
// each with a host: what the one-app pages are compared on.
func onePageFixture() *fakeDeployments {
	q := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	a := appDeployment("20261125-200000-00000a", "", strings.Repeat("a", 40), q)
	a.ReleaseName = "20261125200000-aaaaaaa"
	a.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusSucceeded, Duration: 3 * time.Second,
		Steps: []deploy.StepResult{{Name: "pip", Status: deploy.StatusSucceeded, Started: q, Duration: 2 * time.Second}}}}
	b := appDeployment("20261125-200100-00000b", "", strings.Repeat("b", 40), q.Add(time.Minute))
	b.Action, b.Request.Trigger, b.Request.Actor = deploy.ActionRollback, deploy.TriggerCLI, "ops"
	return &fakeDeployments{deps: map[string]*deploy.Deployment{a.ID: a, b.ID: b}}
}

// TestOneAppPagesUnchanged: with one app, the status page's index and a
// deployment's page are what they were before there were apps (byte for
// byte: testdata/page-*.html were written by the server of before).
func TestOneAppPagesUnchanged(t *testing.T) {
	s, err := New(Config{APIToken: pageToken, StateDir: t.TempDir(), Version: "v1.2.3"}, testApp(onePageFixture()))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	for _, tc := range []struct{ path, golden string }{
		{"/", "page-one-app-index.html"},
		{"/deployments/20261125-200000-00000a", "page-one-app-deployment.html"},
		{"/deployments/20261125-200100-00000b", "page-one-app-rollback.html"},
	} {
		w := do(h, http.MethodGet, tc.path, "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+pageToken) })
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", tc.path, w.Code)
		}
		file := filepath.Join("testdata", tc.golden)
		if *updatePages {
			if err := os.WriteFile(file, w.Body.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), w.Body.String()); diff != "" {
			t.Errorf("GET %s changed with one app (-before +now):\n%s", tc.path, diff)
		}
	}
}
