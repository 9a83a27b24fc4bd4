package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
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

// TestEndToEndHealthCheckRetriesAndRollback: an app that answers 500 for a
// while after its restart passes once it comes up (the check retries), and
// a rollback is health-checked too: a host whose old release does not come
// up healthy goes back to where it was, restarted, and the rollback stops
// before the next host.
func TestEndToEndHealthCheckRetriesAndRollback(t *testing.T) {
	e := newE2E(t, 2)
	const port = 8000
	e.vars["DEPLOY_RESTART_CMD"] = e.env.RestartCmd(port)
	e.vars["DEPLOY_HEALTH_URL"] = "http://{host}:8000/health"
	e.vars["DEPLOY_HEALTH_TIMEOUT"] = "20s"
	sha1 := e.commit("1.0", nil)
	first := e.mustDeploy()
	web1, web2 := e.env.Hosts[0], e.env.Hosts[1]

	// Deploy 2.0 while web1's app answers 500; it recovers 2 s after its
	// restart (a new pid), as an app that needs time to warm up would.
	sha2 := e.commit("2.0", nil)
	if err := web1.SetUnhealthy(true); err != nil {
		t.Fatal(err)
	}
	pid1 := e.onHost(web1, "cat", "app.pid")
	recovered := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			out, _ := e.env.SSH(context.Background(), web1, "cat", "app.pid").Output()
			if pid := strings.TrimSpace(string(out)); pid != "" && pid != pid1 {
				time.Sleep(2 * time.Second)
				recovered <- web1.SetUnhealthy(false)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		recovered <- errors.New("web1's app was never restarted")
	}()
	second, run := e.mustDeployJSON()
	if err := <-recovered; err != nil {
		t.Fatal(err)
	}
	// The health step's report: failed attempts, then a 2xx.
	var report string
	for _, line := range strings.Split(strings.TrimSpace(run.stderr), "\n") {
		var rec struct{ Msg, Host, Step, Output string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "step done" && rec.Step == "health" && rec.Host == web1.Name {
			report = rec.Output
		}
	}
	if !strings.Contains(report, "attempt 1: answered 500") || !regexp.MustCompile(`answered 2xx \(attempt ([2-9]|\d\d)\)`).MatchString(report) {
		t.Errorf("web1's health step reports\n%s\nwant failed attempts, then a 2xx", report)
	}
	for _, h := range e.env.Hosts {
		if body := httpGet(t, h.HealthURL(port)); !strings.Contains(body, "ok 2.0 "+sha2) {
			t.Errorf("%s serves %q, want 2.0", h.Name, body)
		}
	}

	// Roll back while web1's old release cannot come up healthy.
	if err := web1.SetUnhealthy(true); err != nil {
		t.Fatal(err)
	}
	e.vars["DEPLOY_HEALTH_TIMEOUT"] = "3s"
	pid2 := e.onHost(web2, "cat", "app.pid")
	log2 := e.onHost(web2, "cat", "app/revisions.log")
	r := e.pushdeploy("rollback")
	if r.code != 1 || !strings.Contains(r.stderr, "host "+web1.Name+": health:") {
		t.Fatalf("rollback: exit %d, want 1 with web1's health failure\n%s", r.code, r.stderr)
	}
	if err := web1.SetUnhealthy(false); err != nil {
		t.Fatal(err)
	}
	// web1 is back on 2.0, restarted there (it serves 2.0 again), and its
	// revisions.log tells both switches.
	if got := current(web1); got != "releases/"+second.Release {
		t.Errorf("web1: current -> %q, want %q", got, "releases/"+second.Release)
	}
	if body := httpGet(t, web1.HealthURL(port)); !strings.Contains(body, "ok 2.0 "+sha2) {
		t.Errorf("web1 serves %q, want 2.0 again", body)
	}
	lines := strings.Split(e.onHost(web1, "cat", "app/revisions.log"), "\n")
	if n := len(lines); n < 2 || !strings.Contains(lines[n-2], " rollback "+first.Release+" "+sha1) || !strings.Contains(lines[n-1], " rollback "+second.Release+" "+sha2) {
		t.Errorf("web1's revisions.log ends with\n%s\nwant the rollback to %s and the way back", strings.Join(lines, "\n"), first.Release)
	}
	// web2 was never reached.
	if got := current(web2); got != "releases/"+second.Release {
		t.Errorf("web2: current -> %q", got)
	}
	if pid := e.onHost(web2, "cat", "app.pid"); pid != pid2 {
		t.Errorf("web2's app was restarted")
	}
	if got := e.onHost(web2, "cat", "app/revisions.log"); got != log2 {
		t.Errorf("web2 was switched: %s", got)
	}
}
