package eventlog

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// TestReportRoundTrip: a deployment's report read back from the log is
// the report the hub's stream shows, with every field set: a field added
// to deploy.DeploymentReport and not carried by fromReport fails here.
func TestReportRoundTrip(t *testing.T) {
	var want deploy.DeploymentReport
	v := reflect.ValueOf(&want).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			f.SetString("x-" + v.Type().Field(i).Name)
		}
	}
	queued := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	started, finished := queued.Add(time.Second), queued.Add(61500*time.Millisecond)
	duration := finished.Sub(started).Seconds()
	want.Queued, want.Started, want.Finished, want.Duration = queued, &started, &finished, &duration
	for i := range v.NumField() {
		if f := v.Field(i); f.IsZero() && v.Type().Field(i).Name != "Hosts" {
			t.Fatalf("the test leaves %s unset", v.Type().Field(i).Name)
		}
	}
	if diff := cmp.Diff(want, deploy.ReportDeployment(fromReport(want), false)); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}
