package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			s.t.Fatalf("serve exited with %v after SIGTERM\n%s", err, s.stderr)
		}
	case <-time.After(60 * time.Second):
		s.t.Fatalf("serve did not exit after SIGTERM\n%s", s.stderr)
	}
}

func (s *server) apiDeploy() string {
	s.t.Helper()
	code, out := s.api(http.MethodPost, "/api/deploy")
	if code != http.StatusAccepted {
		s.t.Fatalf("POST /api/deploy: %d %v", code, out)
	}
	return out["deployment"].(string)
}

// historySteps returns "host/step:status" for each step of a deployment answer.
func historySteps(d map[string]any) []string {
	var out []string
	hosts, _ := d["hosts"].([]any)
	for _, h := range hosts {
		hm := h.(map[string]any)
		steps, _ := hm["steps"].([]any)
		for _, st := range steps {
			sm := st.(map[string]any)
			out = append(out, hm["host"].(string)+"/"+sm["step"].(string)+":"+sm["status"].(string))
		}
	}
	return out
}

// TestEndToEndHistorySurvivesRestart deploys through the API, runs a CLI
// deploy beside serve (both write the same history), stops serve with
// SIGTERM and starts it again: both deployments are still there, with
// their hosts and steps.
func TestEndToEndHistorySurvivesRestart(t *testing.T) {
	e := newE2E(t, 2)
	sha1 := e.commit("1.0", nil)
	s := e.serve()
	id := s.apiDeploy()
	before := s.waitDone(id)
	if before["status"] != "succeeded" {
		t.Fatalf("deployment: %v\n%s", before, s.stderr)
	}

	// A CLI deploy while serve runs, into the same DEPLOY_DATA_DIR.
	sha2 := e.commit("1.0", map[string]string{"NEWS": "second\n"})
	cli := e.mustDeploy()
	_, list := s.api(http.MethodGet, "/api/deployments?limit=1")
	newest, _ := list["deployments"].([]any)
	if len(newest) != 1 || newest[0].(map[string]any)["id"] != cli.ID {
		t.Fatalf("serve's list does not start with the CLI deployment %s: %v", cli.ID, list)
	}
	s.stop()
	fi, err := os.Stat(filepath.Join(e.vars["DEPLOY_DATA_DIR"], "history.db"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("history.db: %v %v, want mode 0600", fi, err)
	}

	s = e.serve()
	code, after := s.api(http.MethodGet, "/api/deployments/"+id)
	if code != http.StatusOK {
		t.Fatalf("after a restart, GET deployment %s: %d %v", id, code, after)
	}
	for _, k := range []string{"status", "commit", "release", "trigger", "started", "finished"} {
		if after[k] != before[k] {
			t.Errorf("after a restart, %s is %v, was %v", k, after[k], before[k])
		}
	}
	if after["commit"] != sha1 || after["trigger"] != "api" {
		t.Errorf("deployment after a restart: %v", after)
	}
	got, want := historySteps(after), historySteps(before)
	if len(got) == 0 || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("steps after a restart:\n  %v\nwere\n  %v", got, want)
	}
	for _, h := range after["hosts"].([]any) {
		hm := h.(map[string]any)
		if hm["status"] != "succeeded" || hm["duration_s"].(float64) <= 0 {
			t.Errorf("host after a restart: %v", hm)
		}
	}

	// The CLI deployment, recorded by the CLI, read by serve.
	code, c := s.api(http.MethodGet, "/api/deployments/"+cli.ID)
	me, _ := user.Current()
	if code != http.StatusOK || c["trigger"] != "cli" || c["status"] != "succeeded" || c["commit"] != sha2 || c["actor"] != me.Username {
		t.Errorf("CLI deployment: %d %v, want trigger cli by %s", code, c, me.Username)
	}
	if n := len(historySteps(c)); n == 0 {
		t.Errorf("CLI deployment has no steps: %v", c)
	}
	_, list = s.api(http.MethodGet, "/api/deployments?status=succeeded")
	if n := len(list["deployments"].([]any)); n != 2 {
		t.Errorf("%d succeeded deployments after a restart, want 2: %v", n, list)
	}
	// A dry run is not recorded.
	if r := e.pushdeploy("deploy", "--dry-run"); r.code != 0 {
		t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
	}
	if n := s.deploymentCount(); n != 2 {
		t.Errorf("%d deployments after a dry run, want 2", n)
	}
	// /healthz knows the last deployment from the record.
	resp, err := http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz after a restart: %d", resp.StatusCode)
	}
	checkHistoryCommand(t, e, id, cli.ID, sha1, sha2)
	s.stop()
}

// checkHistoryCommand reads the history with `pushdeploy history` while
// serve runs: the list newest first (the CLI deployment, then serve's),
// its filters, one deployment per host and step, and --json.
func checkHistoryCommand(t *testing.T, e *e2e, apiID, cliID, sha1, sha2 string) {
	t.Helper()
	r := e.pushdeploy("history")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") ||
		!strings.HasPrefix(lines[1], cliID+" ") || !strings.Contains(lines[1], " cli ") || !strings.Contains(lines[1], sha2[:7]) ||
		!strings.HasPrefix(lines[2], apiID+" ") || !strings.Contains(lines[2], " api ") || !strings.Contains(lines[2], sha1[:7]) {
		t.Errorf("pushdeploy history: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.pushdeploy("history", "--commit", sha1[:8], "--since", "1h"); r.code != 0 || strings.Contains(r.stdout, cliID) || !strings.Contains(r.stdout, apiID) {
		t.Errorf("history --commit %s --since 1h: exit %d\n%s%s", sha1[:8], r.code, r.stdout, r.stderr)
	}
	if r := e.pushdeploy("history", "--status", "failed"); r.code != 0 || strings.TrimSpace(r.stdout) != "no deployments match" {
		t.Errorf("history --status failed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.pushdeploy("history", "--status", "bogus"); r.code != 2 || !strings.Contains(r.stderr, "--status") {
		t.Errorf("history --status bogus: exit %d, want 2\n%s", r.code, r.stderr)
	}
	r = e.pushdeploy("history", apiID)
	for _, want := range []string{"deploy " + apiID + "  succeeded  (api", "commit   " + sha1, "@127.", "  pip ", "  switch ", "    | Successfully installed pdtestdep-1.0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("history %s lacks %q: exit %d\n%s%s", apiID, want, r.code, r.stdout, r.stderr)
		}
	}
	r = e.pushdeploy("history", cliID, "--json")
	var dep deploymentJSON
	if err := json.Unmarshal([]byte(r.stdout), &dep); r.code != 0 || err != nil || dep.ID != cliID || dep.Commit != sha2 || len(dep.Hosts) != 2 || len(dep.Hosts[0].Steps) == 0 {
		t.Errorf("history %s --json: exit %d, %v\n%s%s", cliID, r.code, err, r.stdout, r.stderr)
	}
	if r := e.pushdeploy("history", "no-such-deployment"); r.code != 1 || !strings.Contains(r.stderr, "not in the history") {
		t.Errorf("history of an unknown id: exit %d, want 1\n%s", r.code, r.stderr)
	}
}

// TestEndToEndKilledMidDeployIsInterrupted SIGKILLs serve while the first
// host's restart command runs: after the next start, that deployment is
// "interrupted", and the next deploy succeeds (the host lock died with
// the connection).
func TestEndToEndKilledMidDeployIsInterrupted(t *testing.T) {
	e := newE2E(t, 2)
	e.commit("1.0", nil)
	// The restart command sleeps on hosts that have a "slow" file.
	e.vars["DEPLOY_RESTART_CMD"] = `if [ -e "$HOME/slow" ]; then sleep 30; fi; ` + restartCmd
	first := e.env.Hosts[0]
	e.onHost(first, "touch", "slow")
	s := e.serve()
	id := s.apiDeploy()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, d := s.api(http.MethodGet, "/api/deployments/"+id)
		if slices.Contains(historySteps(d), first.Name+"/restart:running") {
			break
		}
		if st := d["status"]; st != "queued" && st != "running" {
			t.Fatalf("the deployment ended before its restart: %v", d)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deploy never reached the restart: %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The record is written a moment after the worker's copy changes:
	// wait until the history itself has the running restart.
	st, err := history.Open(context.Background(), e.vars["DEPLOY_DATA_DIR"], history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	await(t, "the history to record the running restart", 2*time.Minute, func() (bool, any) {
		d, _, err := st.Deployment(context.Background(), id)
		if err != nil || d == nil {
			return false, err
		}
		for _, h := range d.Hosts {
			for _, step := range h.Steps {
				if h.Host.String() == first.Name && step.Name == "restart" && step.Status == deploy.StatusRunning {
					return true, nil
				}
			}
		}
		return false, d.Hosts
	})
	st.Close()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.exited

	e.onHost(first, "rm", "slow")
	s = e.serve()
	code, d := s.api(http.MethodGet, "/api/deployments/"+id)
	if code != http.StatusOK || d["status"] != "interrupted" || d["finished"] == nil {
		t.Fatalf("killed deployment after the next start: %d %v", code, d)
	}
	if msg, _ := d["error"].(string); !strings.Contains(msg, "stopped before the deployment finished") {
		t.Errorf("error %q does not say the deployer stopped", msg)
	}
	steps := strings.Join(historySteps(d), " ")
	if !strings.Contains(steps, first.Name+"/restart:interrupted") || strings.Contains(steps, ":running") {
		t.Errorf("steps of the interrupted deployment: %s", steps)
	}
	_, list := s.api(http.MethodGet, "/api/deployments?status=interrupted")
	if l := list["deployments"].([]any); len(l) != 1 || l[0].(map[string]any)["id"] != id {
		t.Errorf("status=interrupted lists %v, want %s", list, id)
	}

	next := s.waitDone(s.apiDeploy())
	if next["status"] != "succeeded" {
		t.Fatalf("the deploy after the kill: %v\n%s", next, s.stderr)
	}
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+next["release"].(string); got != want {
			t.Errorf("%s: current -> %q, want %q", h.Name, got, want)
		}
	}
	s.stop()
}

// TestEndToEndHistoryUnusable puts a file that is not a database where the
// history goes: serve refuses to start and names DEPLOY_DATA_DIR; a CLI
// deploy warns and deploys all the same.
func TestEndToEndHistoryUnusable(t *testing.T) {
	e := newE2E(t, 1)
	e.commit("1.0", nil)
	db := filepath.Join(e.vars["DEPLOY_DATA_DIR"], "history.db")
	if err := os.WriteFile(db, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.vars["DEPLOY_WEBHOOK_SECRET"] = "s3cret"
	e.vars["DEPLOY_LISTEN"] = freePort(t)
	r := e.pushdeploy("serve")
	if r.code == 0 || !strings.Contains(r.stderr, "DEPLOY_DATA_DIR") || !strings.Contains(r.stderr, "history") {
		t.Errorf("serve with a broken history: exit %d, want an error naming DEPLOY_DATA_DIR and the history\n%s", r.code, r.stderr)
	}
	t.Logf("serve: %s", lastLine(r.stderr))
	r = e.pushdeploy("deploy")
	if r.code != 0 {
		t.Fatalf("CLI deploy with a broken history: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "not recorded in the history") {
		t.Errorf("CLI deploy did not warn that it is not recorded:\n%s", r.stderr)
	}
}
