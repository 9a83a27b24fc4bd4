package webhook

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
)

// healthJSON is /healthz's answer.
type healthJSON struct {
	Status         string          `json:"status"`
	Reason         string          `json:"reason,omitempty"`
	Version        string          `json:"version"`
	Uptime         float64         `json:"uptime_s"`
	QueueLength    int             `json:"queue_length"`
	Running        *deploymentJSON `json:"running"`
	LastDeployment *deploymentJSON `json:"last_deployment"`
}

// healthz answers 200 when the deployer can work, 503 (with the reason)
// when its state folder or its history database cannot be written, or its
// worker is stuck.
func (s *Server) healthz(c echo.Context) error {
	h := s.d.Health()
	out := healthJSON{Status: "ok", Version: s.cfg.Version, Uptime: time.Since(s.started).Seconds(), QueueLength: h.QueueLength}
	if h.Running != nil {
		j := toJSON(h.Running, false)
		out.Running = &j
	}
	last := h.Last
	if last == nil {
		// After a restart the worker has run nothing yet: the record knows.
		last = s.lastFinished(c.Request().Context())
	}
	if last != nil {
		j := toJSON(last, false)
		out.LastDeployment = &j
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
