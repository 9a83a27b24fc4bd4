package webhook

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// healthJSON is /healthz's answer.
type healthJSON struct {
	Status         string                `json:"status"`
	Reason         string                `json:"reason,omitempty"`
	Version        string                `json:"version"`
	Uptime         float64               `json:"uptime_s"`
	QueueLength    int                   `json:"queue_length"`
	Running        *healthDeploymentJSON `json:"running"`
	LastDeployment *healthDeploymentJSON `json:"last_deployment"`
}

// healthDeploymentJSON is a deployment as /healthz, which needs no token,
// tells it: its status, its times and, when it failed in a step, that
// step's host and name. Never an error message or output: a failing
// hook's output may hold anything (it once showed a database URL). The
// rest is in the API (GET /api/deployments/{id}).
type healthDeploymentJSON struct {
	ID         string     `json:"id"`
	Action     string     `json:"action"`
	Status     string     `json:"status"`
	Queued     time.Time  `json:"queued"`
	Started    *time.Time `json:"started"`
	Finished   *time.Time `json:"finished"`
	FailedHost string     `json:"failed_host,omitempty"`
	FailedStep string     `json:"failed_step,omitempty"`
}

func toHealthJSON(d *deploy.Deployment) *healthDeploymentJSON {
	r := deploy.ReportDeployment(d, false)
	j := &healthDeploymentJSON{ID: r.ID, Action: r.Action, Status: r.Status, Queued: r.Queued, Started: r.Started, Finished: r.Finished}
	j.FailedHost, j.FailedStep = d.FailedAt()
	return j
}

// healthz answers 200 when the deployer can work, 503 (with the reason)
// when its state folder or its history database cannot be written, or its
// worker is stuck.
func (s *Server) healthz(c echo.Context) error {
	h := s.d.Health()
	out := healthJSON{Status: "ok", Version: s.cfg.Version, Uptime: time.Since(s.started).Seconds(), QueueLength: h.QueueLength}
	if h.Running != nil {
		out.Running = toHealthJSON(h.Running)
	}
	last := h.Last
	if last == nil {
		// After a restart the worker has run nothing yet: the record knows.
		last = s.lastFinished(c.Request().Context())
	}
	if last != nil {
		out.LastDeployment = toHealthJSON(last)
	}
	status := http.StatusOK
	if err := s.stateWritable(); err != nil {
		out.Status, out.Reason, status = "unhealthy", err.Error(), http.StatusServiceUnavailable
	} else if err := s.historyHealth(c.Request().Context()); err != nil {
		out.Status, out.Reason, status = "unhealthy", err.Error(), http.StatusServiceUnavailable
	} else if h.Stuck != "" {
		out.Status, out.Reason, status = "unhealthy", h.Stuck, http.StatusServiceUnavailable
	}
	return c.JSON(status, out)
}

// stateWritable checks, at most every 5 seconds, that a file can be
// created in the state directory.
func (s *Server) stateWritable() error {
	if s.cfg.StateDir == "" {
		return nil
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if time.Since(s.stateChecked) < 5*time.Second {
		return s.stateErr
	}
	s.stateChecked = time.Now()
	f, err := os.CreateTemp(s.cfg.StateDir, ".healthz-*")
	if err == nil {
		name := f.Name()
		err = f.Close()
		if rmErr := os.Remove(name); err == nil {
			err = rmErr
		}
	}
	s.stateErr = nil
	if err != nil {
		s.stateErr = fmt.Errorf("%w: %v", errStateDir, err)
	}
	return s.stateErr
}
