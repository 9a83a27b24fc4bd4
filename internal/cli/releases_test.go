package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

func TestPrintReleases(t *testing.T) {
	at := time.Date(2026, 11, 25, 18, 34, 0, 0, time.UTC)
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	hosts := []deploy.HostReleases{
		{Host: deploy.Host{Name: "web1"}, Current: "20261125183400-aaaaaaa", Previous: "20261125170000-bbbbbbb", Releases: []deploy.ReleaseInfo{
			{Name: "20261125190000-ccccccc", Time: at.Add(26 * time.Minute), Missing: []string{"REVISION"}},
			{Name: "20261125183400-aaaaaaa", Time: at, Commit: a, Complete: true, Current: true},
			{Name: "20261125170000-bbbbbbb", Time: at.Add(-94 * time.Minute), Commit: b, Complete: true, Previous: true},
		}},
		{Host: deploy.Host{Name: "web2"}, Err: errors.New("host web2: connect: connection refused")},
		{Host: deploy.Host{Name: "web3"}},
	}
	var out strings.Builder
	printReleases(&out, hosts, deploy.Disagree(hosts))
	want := `web1
  RELEASE                 DEPLOYED (UTC)       COMMIT   COMPLETE
  20261125190000-ccccccc  2026-11-25 19:00:00  -        no (missing REVISION)
  20261125183400-aaaaaaa  2026-11-25 18:34:00  aaaaaaa  yes       current
  20261125170000-bbbbbbb  2026-11-25 17:00:00  bbbbbbb  yes       previous

web2
  ERROR: host web2: connect: connection refused

web3
  no releases

warning: hosts disagree about current: web1=20261125183400-aaaaaaa web3=(none)
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestPrintRollbackPlan(t *testing.T) {
	sha := strings.Repeat("a", 40)
	targets := []deploy.RollbackTarget{
		{Host: deploy.Host{Name: "web1"}, From: deploy.ReleaseInfo{Name: "20261125183400-bbbbbbb"}, To: deploy.ReleaseInfo{Name: "20261125170000-aaaaaaa", Commit: sha}},
		{Host: deploy.Host{Name: "web2"}, From: deploy.ReleaseInfo{Name: "20261125170000-aaaaaaa"}, To: deploy.ReleaseInfo{Name: "20261125170000-aaaaaaa", Commit: sha}},
		{Host: deploy.Host{Name: "web3"}, Err: &deploy.StepError{Host: "web3", Step: "releases", Err: errors.New("exit status 1"), Output: "sh: permission denied"}},
		{Host: deploy.Host{Name: "web4"}, Err: errors.New("host web4: no current release on this host: nothing to roll back from")},
	}
	var out strings.Builder
	printRollbackPlan(&out, "", targets, []deploy.Step{deploy.StepSwitch, deploy.StepRestart}, false)
	want := `rollback plan (dry run, nothing was changed); on each host in order: lock, switch, restart
  web1                     20261125183400-bbbbbbb -> 20261125170000-aaaaaaa  commit ` + sha + `
  web2                     20261125170000-aaaaaaa already current: left alone
  web3                     CANNOT: releases: exit status 1
      sh: permission denied
  web4                     CANNOT: no current release on this host: nothing to roll back from
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	printRollbackPlan(&out, "", targets[:1], []deploy.Step{deploy.StepSwitch}, true)
	if got := out.String(); !strings.Contains(got, `"ok":true`) || !strings.Contains(got, `"steps":["lock","switch"]`) || !strings.Contains(got, `"target":"20261125170000-aaaaaaa"`) {
		t.Errorf("json: %s", got)
	}
}

func TestRollbackUsage(t *testing.T) {
	for _, args := range [][]string{{"rollback", "--to", "../x"}, {"rollback", "--to", "$(id)"}, {"rollback", "extra"}, {"releases", "--to", "x"}} {
		var stderr strings.Builder
		err := run(t.Context(), args, &strings.Builder{}, &stderr)
		if code := exitCode(err, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%v)", args, code, err)
		}
	}
}
