package deploy

import "time"

// DeploymentReport is a deployment as the API answers it (GET
// /api/deployments and /api/deployments/{id}, the event stream; /healthz,
// which needs no token, tells only its id, action, status and times) and
// as `deploy --json`, `rollback --json` and `history --json` print it:
// one shape, documented in docs/serve.md, so that a script reads any of
// them the same way.
type DeploymentReport struct {
	ID            string       `json:"id"`
	App           string       `json:"app"`
	Action        string       `json:"action"`
	Trigger       string       `json:"trigger"`
	Provider      string       `json:"provider,omitempty"`
	Delivery      string       `json:"delivery,omitempty"`
	Actor         string       `json:"actor,omitempty"`
	Branch        string       `json:"branch"`
	Commit        string       `json:"commit,omitempty"`
	Requested     string       `json:"requested_commit,omitempty"`
	RequestedRel  string       `json:"requested_release,omitempty"`
	PayloadCommit string       `json:"payload_commit,omitempty"`
	Release       string       `json:"release,omitempty"`
	Node          string       `json:"node,omitempty"` // the deployer that ran it (Deployment.Node)
	Status        string       `json:"status"`
	Queued        time.Time    `json:"queued"`
	Started       *time.Time   `json:"started"`
	Finished      *time.Time   `json:"finished"`
	Duration      *float64     `json:"duration_s,omitempty"` // from start to finish, once finished
	Error         string       `json:"error,omitempty"`
	Hosts         []HostReport `json:"hosts,omitempty"`
}

// HostReport is one host in a DeploymentReport.
type HostReport struct {
	Host     string       `json:"host"`
	Status   string       `json:"status"`
	Duration float64      `json:"duration_s"`
	Steps    []StepReport `json:"steps"`
}

// StepReport is one step in a HostReport.
type StepReport struct {
	Step     string    `json:"step"`
	Status   string    `json:"status"`
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_s"`
	Error    string    `json:"error,omitempty"`
	Output   string    `json:"output_tail,omitempty"` // the last 4 KiB of the step's output
}

// ReportDeployment turns d into its DeploymentReport; with hosts, each
// host's steps too (the API's lists leave them out). d must not change
// meanwhile: pass a Snapshot of a running deployment.
func ReportDeployment(d *Deployment, hosts bool) DeploymentReport {
	branch := d.Release.Branch
	if branch == "" {
		branch = d.Request.Push.Branch // not resolved yet
	}
	action := d.Action
	if action == "" {
		action = ActionDeploy // recorded before actions were
	}
	app := d.App
	if app == "" {
		app = DefaultApp // recorded before apps were
	}
	j := DeploymentReport{
		ID: d.ID, App: app, Action: string(action), Trigger: string(d.Request.Trigger), Provider: d.Request.Provider,
		Delivery: d.Request.DeliveryID, Actor: d.Request.Actor, Branch: branch,
		Commit: d.Release.Commit, Requested: d.Request.Push.Commit, RequestedRel: d.Request.Release, PayloadCommit: d.Request.PayloadCommit,
		Release: d.ReleaseName, Node: d.Node, Status: string(d.Status), Queued: d.Queued,
		Started: timePtr(d.Started), Finished: timePtr(d.Finished),
	}
	if !d.Started.IsZero() && !d.Finished.IsZero() {
		// By the wall clock (Round(0) drops the monotonic reading): the
		// same figure whether d is a live snapshot or was read back from
		// the record or the event log, which keep wall times only.
		s := d.Finished.Round(0).Sub(d.Started.Round(0)).Seconds()
		j.Duration = &s
	}
	if d.Err != nil {
		j.Error = d.Err.Error()
	}
	if !hosts {
		return j
	}
	for _, h := range d.Hosts {
		hj := HostReport{Host: h.Host.String(), Status: string(h.Status), Duration: h.Duration.Seconds(), Steps: []StepReport{}}
		for _, st := range h.Steps {
			sj := StepReport{Step: string(st.Name), Status: string(st.Status), Started: st.Started, Duration: st.Duration.Seconds(), Output: st.Output}
			if st.Err != nil {
				sj.Error = st.Err.Error()
			}
			hj.Steps = append(hj.Steps, sj)
		}
		j.Hosts = append(j.Hosts, hj)
	}
	return j
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
