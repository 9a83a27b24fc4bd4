package main

import (
	"os"
	"strings"
	"testing"
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
