package eventlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// eventRow is a deploy.Event as the log stores it (the event column; the
// deployment id and Seq are columns of their own). A deployment's
// snapshot is stored as the event stream shows it: its report, without
// hosts.
type eventRow struct {
	Kind       deploy.EventKind         `json:"kind"`
	Time       time.Time                `json:"time"`
	App        string                   `json:"app,omitempty"`
	Status     deploy.Status            `json:"status,omitempty"`
	Host       string                   `json:"host,omitempty"`
	Step       deploy.Step              `json:"step,omitempty"`
	Duration   time.Duration            `json:"duration_ns,omitempty"`
	Line       string                   `json:"line,omitempty"`
	Error      string                   `json:"error,omitempty"`
	Deployment *deploy.DeploymentReport `json:"deployment,omitempty"`
}

func encodeEvent(ev deploy.Event) ([]byte, error) {
	r := eventRow{Kind: ev.Kind, Time: ev.Time, App: ev.App, Status: ev.Status, Host: ev.Host, Step: ev.Step,
		Duration: ev.Duration, Line: ev.Line, Error: ev.Error}
	if ev.Deployment != nil {
		rep := deploy.ReportDeployment(ev.Deployment, false)
		r.Deployment = &rep
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("event %d of deployment %s: %w", ev.Seq, ev.DeploymentID, err)
	}
	return raw, nil
}

func decodeEvent(id string, seq int, raw []byte) (deploy.Event, error) {
	var r eventRow
	if err := json.Unmarshal(raw, &r); err != nil {
		return deploy.Event{}, fmt.Errorf("event %d of deployment %s: %w", seq, id, err)
	}
	ev := deploy.Event{Seq: seq, Kind: r.Kind, Time: r.Time, DeploymentID: id, App: r.App, Status: r.Status, Host: r.Host,
		Step: r.Step, Duration: r.Duration, Line: r.Line, Error: r.Error}
	if r.Deployment != nil {
		ev.Deployment = fromReport(*r.Deployment)
	}
	return ev, nil
}

// fromReport is a deployment whose report (deploy.ReportDeployment,
// without hosts) is rep: what the event stream shows of a snapshot.
func fromReport(rep deploy.DeploymentReport) *deploy.Deployment {
	d := &deploy.Deployment{
		ID: rep.ID, App: rep.App, Action: deploy.Action(rep.Action),
		Request: deploy.Request{
			Trigger: deploy.Trigger(rep.Trigger), Provider: rep.Provider, DeliveryID: rep.Delivery, Actor: rep.Actor,
			Push: deploy.Push{Branch: rep.Branch, Commit: rep.Requested}, Release: rep.RequestedRel, PayloadCommit: rep.PayloadCommit,
		},
		Release:     deploy.Release{Branch: rep.Branch, Commit: rep.Commit},
		ReleaseName: rep.Release, Node: rep.Node, Status: deploy.Status(rep.Status), Queued: rep.Queued,
	}
	if rep.Started != nil {
		d.Started = *rep.Started
	}
	if rep.Finished != nil {
		d.Finished = *rep.Finished
	}
	if rep.Error != "" {
		d.Err = errors.New(rep.Error)
	}
	return d
}
