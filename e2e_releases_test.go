package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestEndToEndSharedHooksRetention: a shared .env is visible in the new
// release; a failing before-switch hook leaves its host and the later ones
// untouched; retention keeps exactly DEPLOY_KEEP_RELEASES, never current or
// previous, also after failed deploys.
func TestEndToEndSharedHooksRetention(t *testing.T) {
	e := newE2E(t, 2)
	e.vars["DEPLOY_SHARED_PATHS"] = ".env,media"
	e.vars["DEPLOY_KEEP_RELEASES"] = "2"
	for _, h := range e.env.Hosts {
		e.onHost(h, "sh", "-c", `mkdir -p app/shared && echo "SECRET=$USER" > app/shared/.env`)
	}
	hook := "#!/bin/sh\necho \"migrating $COMMIT with $(command -v python)\" >> \"$HOME/hooks.log\"\n"
	var deps []deploymentJSON
	for i := 0; i < 3; i++ {
		e.commit("1.0", map[string]string{".pushdeploy/before-switch": hook, "NEWS": strings.Repeat("x", i)})
		deps = append(deps, e.mustDeploy())
	}
	for _, h := range e.env.Hosts {
		if env := e.onHost(h, "cat", "app/current/.env"); env != "SECRET="+h.User {
			t.Errorf("%s: shared .env in the release reads %q", h.Name, env)
		}
		if target, _ := os.Readlink(h.Path("app/current/media")); target != h.Home+"/app/shared/media" {
			t.Errorf("%s: media -> %q", h.Name, target)
		}
		log := e.onHost(h, "cat", "hooks.log")
		if n := strings.Count(log, "migrating "); n != 3 || !strings.Contains(log, "/releases/"+deps[2].Release+"/venv/bin/python") {
			t.Errorf("%s: hooks.log:\n%s", h.Name, log)
		}
		want := []string{deps[1].Release, deps[2].Release}
		if got := releases(t, h); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: releases %v, want the newest 2 %v", h.Name, got, want)
		}
	}

	// A failing before-switch hook: host 1 keeps its release, host 2 is
	// not touched, retention removed nothing.
	e.commit("1.0", map[string]string{".pushdeploy/before-switch": "#!/bin/sh\necho 'django.db.utils.OperationalError: no such table' >&2\nexit 1\n"})
	r := e.pushdeploy("deploy")
	first := e.env.Hosts[0]
	if r.code != 1 || !strings.Contains(r.stderr, "host "+first.Name+": before-switch:") || !strings.Contains(r.stderr, "no such table") {
		t.Fatalf("failing hook: exit %d\n%s", r.code, r.stderr)
	}
	for _, h := range e.env.Hosts {
		if got := current(h); got != "releases/"+deps[2].Release {
			t.Errorf("%s: current -> %q after a failing hook", h.Name, got)
		}
		if got := releases(t, h); len(got) != 2 {
			t.Errorf("%s: releases %v after a failing hook", h.Name, got)
		}
	}
	if log := e.onHost(e.env.Hosts[1], "cat", "app/revisions.log"); strings.Count(log, "\n") != 2 {
		t.Errorf("host 2 was touched:\n%s", log)
	}
}

// TestEndToEndHealthCheckRollsBack: each host runs the real app server
// (restarted by DEPLOY_RESTART_CMD) and is health-checked at its own
// address. Host 2 turns unhealthy: it goes back to its old release and is
// restarted there; host 3, switched with the others but not yet restarted,
// goes back without its app ever running the new release; with
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
			// Host 3 was switched with the others, then back before its
			// restart: its app never stopped and never ran the new release.
			if got := current(third); got != "releases/"+first.Release {
				t.Errorf("host 3: current -> %q", got)
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
