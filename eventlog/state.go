package eventlog

import "github.com/pushdeploy/pushdeploy/deploy"

// stateJSON is where a deployment stands, as its events tell: what the
// overview of another deployer shows of it.
type stateJSON struct {
	Deployment *deploy.DeploymentReport `json:"deployment,omitempty"`
	Hosts      []hostJSON               `json:"hosts,omitempty"`
}

// hostJSON is a host's status and the step it is at (the last one it
// started).
type hostJSON struct {
	Host   string        `json:"host"`
	Status deploy.Status `json:"status,omitempty"`
	Step   deploy.Step   `json:"step,omitempty"`
}

// note takes ev into the state.
func (st *stateJSON) note(ev deploy.Event) {
	host := func() *hostJSON {
		for i := range st.Hosts {
			if st.Hosts[i].Host == ev.Host {
				return &st.Hosts[i]
			}
		}
		st.Hosts = append(st.Hosts, hostJSON{Host: ev.Host})
		return &st.Hosts[len(st.Hosts)-1]
	}
	switch ev.Kind {
	case deploy.EventDeployment:
		if ev.Deployment != nil {
			rep := deploy.ReportDeployment(ev.Deployment, false)
			st.Deployment = &rep
		}
	case deploy.EventHost:
		host().Status = ev.Status
	case deploy.EventStep:
		if ev.Status == deploy.StatusRunning {
			host().Step = ev.Step
		}
	}
}

// clone is a copy that shares nothing that changes.
func (st *stateJSON) clone() stateJSON {
	c := stateJSON{Hosts: append([]hostJSON(nil), st.Hosts...)}
	if st.Deployment != nil {
		rep := *st.Deployment // its Hosts are never set: nothing shared changes
		c.Deployment = &rep
	}
	return c
}

// deployment is the state as a deployment with its hosts (their status,
// and their step as their last one); nil before its first snapshot.
func (st *stateJSON) deployment() *deploy.Deployment {
	if st.Deployment == nil {
		return nil
	}
	d := fromReport(*st.Deployment)
	for _, h := range st.Hosts {
		hr := &deploy.HostResult{Host: deploy.Host{Name: h.Host}, Status: h.Status}
		if h.Step != "" {
			hr.Steps = []deploy.StepResult{{Name: h.Step}}
		}
		d.Hosts = append(d.Hosts, hr)
	}
	return d
}
