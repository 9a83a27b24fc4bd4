package cli

import (
	"strings"
	"testing"
	"time"

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
