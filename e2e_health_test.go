package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEndToEndHealthCheckRollsBack: with real app servers on the hosts, a
// failing health check on host 2 sends it back to its old release,
// restarted, and host 3 is left as it was; with
// DEPLOY_ROLLBACK_ON_FAILURE=all host 1 goes back too.
func TestEndToEndHealthCheckRollsBack(t *testing.T) {
	for _, mode := range []string{"host", "all"} {
		t.Run(mode, func(t *testing.T) {
			e := newE2E(t, 3)
			const port = 8000
			e.vars["DEPLOY_RESTART_CMD"] = e.env.RestartCmd(port)
			e.vars["DEPLOY_HEALTH_URL"] = "http://{host}:8000/health"
			e.vars["DEPLOY_HEALTH_TIMEOUT"] = "4s"
			e.vars["DEPLOY_ROLLBACK_ON_FAILURE"] = mode
			sha1 := e.commit("1.0", nil)
			first := e.mustDeploy()

			e.commit("2.0", nil)
			second := e.env.Hosts[1]
			if err := second.SetUnhealthy(true); err != nil {
				t.Fatal(err)
			}
			third := e.env.Hosts[2]
			pid3 := e.onHost(third, "cat", "app.pid")
			log3 := e.onHost(third, "cat", "app/revisions.log")
			rels3 := releases(t, third)
			time.Sleep(1100 * time.Millisecond)
			r := e.pushdeploy("deploy")
			if r.code != 1 || !strings.Contains(r.stderr, "host "+second.Name+": health:") || !strings.Contains(r.stderr, "unhealthy") {
				t.Fatalf("exit %d, want 1 with host 2's health failure\n%s", r.code, r.stderr)
			}
			if err := second.SetUnhealthy(false); err != nil {
				t.Fatal(err)
			}
			// Host 2 is back on its old release and its app was restarted
			// there: it answers with the old version.
			if got := current(second); got != "releases/"+first.Release {
				t.Errorf("host 2: current -> %q, want %q", got, "releases/"+first.Release)
			}
			if body := httpGet(t, second.HealthURL(port)); !strings.Contains(body, "ok 1.0 "+sha1) {
				t.Errorf("host 2 serves %q, want the old release", body)
			}
			// With a health check the hosts go one at a time, so the
			// rollout stopped at host 2: host 3 was never switched (its
			// revisions.log is as it was), its app never restarted, and the
			// release prepared for it is gone.
			if got := current(third); got != "releases/"+first.Release {
				t.Errorf("host 3: current -> %q", got)
			}
			if got := e.onHost(third, "cat", "app/revisions.log"); got != log3 {
				t.Errorf("host 3 was switched: revisions.log\n%s\nwas\n%s", got, log3)
			}
			if got := releases(t, third); !slices.Equal(got, rels3) {
				t.Errorf("host 3: releases %v, were %v", got, rels3)
			}
			if pid := e.onHost(third, "cat", "app.pid"); pid != pid3 {
				t.Errorf("host 3's app was restarted (pid %s, was %s)", pid, pid3)
			}
			if body := httpGet(t, third.HealthURL(port)); !strings.Contains(body, "ok 1.0 "+sha1) {
				t.Errorf("host 3 serves %q, want the old release", body)
			}
			firstHost := e.env.Hosts[0]
			wantVersion, wantCurrent := "ok 2.0", ""
			if mode == "all" {
				wantVersion, wantCurrent = "ok 1.0 "+sha1, "releases/"+first.Release
			}
			if body := httpGet(t, firstHost.HealthURL(port)); !strings.Contains(body, wantVersion) {
				t.Errorf("host 1 serves %q, want %q", body, wantVersion)
			}
			if wantCurrent != "" && current(firstHost) != wantCurrent {
				t.Errorf("host 1: current -> %q, want %q", current(firstHost), wantCurrent)
			}
			for _, h := range e.env.Hosts[:2] {
				if rels := releases(t, h); mode == "all" && len(rels) != 1 {
					t.Errorf("%s: releases %v: the failed deployment's release must be gone", h.Name, rels)
				}
			}
		})
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}
