package cli

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
)

func TestHistoryFilter(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name    string
		f       historyFlags
		want    deploy.Filter
		wantErr string
	}{
		{"defaults", historyFlags{limit: 20}, deploy.Filter{Limit: 20}, ""},
		{"all", historyFlags{limit: 0, status: "failed"}, deploy.Filter{Status: deploy.StatusFailed}, ""},
		{"since a duration", historyFlags{since: "24h"}, deploy.Filter{Since: now.Add(-24 * time.Hour)}, ""},
		{"since a time", historyFlags{since: "2026-11-25T20:00:00Z"}, deploy.Filter{Since: time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)}, ""},
		{"commit lower-cased", historyFlags{commit: "ABC1234"}, deploy.Filter{Commit: "abc1234"}, ""},
		{"negative limit", historyFlags{limit: -1}, deploy.Filter{}, "--limit"},
		{"unknown status", historyFlags{status: "done"}, deploy.Filter{}, `--status: "done" is not a status`},
		{"bad commit", historyFlags{commit: "$(id)"}, deploy.Filter{}, "--commit"},
		{"bad since", historyFlags{since: "yesterday"}, deploy.Filter{}, `--since: "yesterday" is neither`},
		{"negative since", historyFlags{since: "-1h"}, deploy.Filter{}, "--since"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f.filter(now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Since.Equal(tt.want.Since) || got.Limit != tt.want.Limit || got.Status != tt.want.Status || got.Commit != tt.want.Commit {
				t.Errorf("filter = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"20261126-012347-9e5160": true, "": false, "../x": false, "A1": false, strings.Repeat("a", 65): false, "x y": false,
	} {
		if got := validID(id); got != want {
			t.Errorf("validID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestHistoryShowsTheNode: with DEPLOY_DATABASE_URL (several deployers)
// the list has a NODE column naming the deployer that ran each
// deployment; one deployment's detail names it whenever it is known.
func TestHistoryShowsTheNode(t *testing.T) {
	ran := &deploy.Deployment{ID: "20261202-090000-000001", Action: deploy.ActionDeploy, Status: deploy.StatusSucceeded, Node: "deploy2:4242",
		Request: deploy.Request{Trigger: deploy.TriggerWebhook}}
	queued := &deploy.Deployment{ID: "20261202-090000-000002", Action: deploy.ActionDeploy, Status: deploy.StatusQueued,
		Request: deploy.Request{Trigger: deploy.TriggerWebhook}}
	for _, tc := range []struct {
		withNode bool
		want     []string // the header's last column, then each row's
	}{
		{false, []string{"TOOK", "-", "-"}},
		{true, []string{"NODE", "deploy2:4242", "-"}},
	} {
		var b strings.Builder
		printHistoryList(&b, []*deploy.Deployment{ran, queued}, tc.withNode)
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		var got []string
		for _, l := range lines {
			f := strings.Fields(l)
			got = append(got, f[len(f)-1])
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("withNode %v: last columns %q, want %q\n%s", tc.withNode, got, tc.want, b.String())
		}
	}
	var b strings.Builder
	printHistoryDetail(&b, ran)
	if !strings.Contains(b.String(), "\nnode     deploy2:4242\n") {
		t.Errorf("detail does not name the node:\n%s", b.String())
	}
}

// TestNodeName: a deployer is DEPLOY_NODE_NAME, else HOSTNAME:PID.
func TestNodeName(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ set, want string }{
		{"deploy1", "deploy1"},
		{"", fmt.Sprintf("%s:%d", host, os.Getpid())},
	} {
		if got := nodeName(&config.Config{NodeName: tc.set}); got != tc.want {
			t.Errorf("DEPLOY_NODE_NAME=%q: node %q, want %q", tc.set, got, tc.want)
		}
	}
}
