package deploy

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReportDeployment(t *testing.T) {
	queued := time.Date(2026, 11, 25, 20, 39, 53, 0, time.UTC)
	started, finished := queued.Add(time.Second), queued.Add(13*time.Second)
	commit := "cf14c3aafe4ff76f6b4b72364a0378ae5cd94328"
	finishedDep := func() *Deployment {
		d := NewDeployment(Request{Trigger: TriggerWebhook, Provider: "github", DeliveryID: "d-1", Actor: "ada",
			Push: Push{Branch: "release"}, PayloadCommit: commit}, queued)
		d.ID = "20261125-203953-cb5c6e"
		d.Release = Release{Branch: "release", Commit: commit}
		d.ReleaseName, d.Started, d.Finished = "20261125203954-cf14c3a", started, finished
		d.Status, d.Err = StatusFailed, errors.New("host web1: pip: exit status 1")
		d.Hosts = []*HostResult{{Host: Host{Name: "web1"}, Status: StatusFailed, Duration: 12 * time.Second, Steps: []StepResult{
			{Name: StepLock, Status: StatusSucceeded, Started: started, Duration: 500 * time.Millisecond, Output: "locked"},
			{Name: StepPip, Status: StatusFailed, Started: started, Duration: 2 * time.Second, Output: "ERROR: nope", Err: errors.New("exit status 1")},
		}}}
		return d
	}
	withID := func(d *Deployment) *Deployment {
		d.ID = "ID"
		return d
	}
	twelve := 12.0

	tests := []struct {
		name  string
		d     *Deployment
		hosts bool
		want  string
	}{
		{
			name: "queued, branch from the request", d: withID(NewDeployment(Request{Trigger: TriggerAPI, Push: Push{Branch: "release", Commit: "cf14c3a"}}, queued)),
			want: `{"id":"ID","app":"default","action":"deploy","trigger":"api","branch":"release","requested_commit":"cf14c3a","status":"queued",` +
				`"queued":"2026-11-25T20:39:53Z","started":null,"finished":null}`,
		},
		{
			name: "a rollback", d: withID(NewDeployment(Request{Action: ActionRollback, Trigger: TriggerCLI, Actor: "ops", Release: "20261125170000-9f8e7d6"}, queued)),
			want: `{"id":"ID","app":"default","action":"rollback","trigger":"cli","actor":"ops","branch":"","requested_release":"20261125170000-9f8e7d6",` +
				`"status":"queued","queued":"2026-11-25T20:39:53Z","started":null,"finished":null}`,
		},
		{
			name: "finished, without hosts", d: finishedDep(),
			want: `{"id":"20261125-203953-cb5c6e","app":"default","action":"deploy","trigger":"webhook","provider":"github","delivery":"d-1","actor":"ada",` +
				`"branch":"release","commit":"` + commit + `","payload_commit":"` + commit + `","release":"20261125203954-cf14c3a","status":"failed",` +
				`"queued":"2026-11-25T20:39:53Z","started":"2026-11-25T20:39:54Z","finished":"2026-11-25T20:40:06Z","duration_s":12,` +
				`"error":"host web1: pip: exit status 1"}`,
		},
		{
			name: "finished, with hosts", d: finishedDep(), hosts: true,
			want: `{"id":"20261125-203953-cb5c6e","app":"default","action":"deploy","trigger":"webhook","provider":"github","delivery":"d-1","actor":"ada",` +
				`"branch":"release","commit":"` + commit + `","payload_commit":"` + commit + `","release":"20261125203954-cf14c3a","status":"failed",` +
				`"queued":"2026-11-25T20:39:53Z","started":"2026-11-25T20:39:54Z","finished":"2026-11-25T20:40:06Z","duration_s":12,` +
				`"error":"host web1: pip: exit status 1","hosts":[{"host":"web1","status":"failed","duration_s":12,"steps":[` +
				`{"step":"lock","status":"succeeded","started":"2026-11-25T20:39:54Z","duration_s":0.5,"output_tail":"locked"},` +
				`{"step":"pip","status":"failed","started":"2026-11-25T20:39:54Z","duration_s":2,"error":"exit status 1","output_tail":"ERROR: nope"}]}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ReportDeployment(tt.d, tt.hosts)
			got, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
	if r := ReportDeployment(finishedDep(), false); r.Duration == nil || *r.Duration != twelve {
		t.Errorf("Duration: got %v, want 12", r.Duration)
	}
}
