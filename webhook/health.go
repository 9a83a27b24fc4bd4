package webhook

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// healthJSON is /healthz's answer. Its top level sums up every app (the
// queue lengths added up, the newest finished deployment of any app); Apps
// tells each.
type healthJSON struct {
	Status         string                `json:"status"`
	Reason         string                `json:"reason,omitempty"`
	Version        string                `json:"version"`
	Uptime         float64               `json:"uptime_s"`
	QueueLength    int                   `json:"queue_length"`
	Running        *healthDeploymentJSON `json:"running"`
	LastDeployment *healthDeploymentJSON `json:"last_deployment"`
	Apps           []healthAppJSON       `json:"apps"`
	// Checks are the database and the other parts the deployer needs
	// (Config.Checks); with the API token, each one's target and error.
	Checks []checkJSON `json:"checks,omitempty"`
	// Problems are the app files that failed the last reload: file,
	// line and variable only (the rest of the message may quote a value).
	Problems []string `json:"problems,omitempty"`
}

// healthAppJSON is one app in /healthz.
type healthAppJSON struct {
	Name           string                `json:"name"`
	Status         string                `json:"status"`
	Reason         string                `json:"reason,omitempty"`
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
	ID string `json:"id"`
	// App is set when the deployer serves several apps.
	App        string     `json:"app,omitempty"`
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
// when its state folder cannot be written, a check fails (the database
// cannot be reached, the history cannot be written), or a worker is stuck.
func (s *Server) healthz(c echo.Context) error {
	ctx := c.Request().Context()
	apps := s.apps.List()
	several := len(apps) > 1
	out := healthJSON{Status: "ok", Version: s.cfg.Version, Uptime: time.Since(s.started).Seconds(), Apps: []healthAppJSON{}}
	var stuck []string
	var latestFinished time.Time
	for _, a := range apps {
		aj, last, reason := s.appHealth(ctx, a, several)
		out.Apps = append(out.Apps, aj)
		out.QueueLength += aj.QueueLength
		if out.Running == nil {
			out.Running = aj.Running
		}
		if last != nil && (out.LastDeployment == nil || last.Finished.After(latestFinished)) {
			out.LastDeployment, latestFinished = aj.LastDeployment, last.Finished
		}
		if reason != "" {
			stuck = append(stuck, reason)
		}
	}
	out.Problems = problemsShown(s.apps.Problems())
	var failed []string
	out.Checks, failed = s.runChecks(ctx, s.validBearer(c)) // the details with the API token
	status := http.StatusOK
	if err := s.stateWritable(); err != nil {
		out.Status, out.Reason, status = "unhealthy", err.Error(), http.StatusServiceUnavailable
	} else if len(failed) > 0 {
		// Only the names: the errors (a database's host and user) are
		// in checks, with the API token, and in the log.
		out.Status, out.Reason, status = "unhealthy", strings.Join(failed, ", ")+" unavailable", http.StatusServiceUnavailable
	} else if len(stuck) > 0 {
		out.Status, out.Reason, status = "unhealthy", strings.Join(stuck, "; "), http.StatusServiceUnavailable
	}
	return c.JSON(status, out)
}

// appHealth is one app's part of /healthz, its last finished deployment
// and, when its worker is stuck, why (naming the app when there are
// several).
func (s *Server) appHealth(ctx context.Context, a App, several bool) (healthAppJSON, *deploy.Deployment, string) {
	h := a.Deployments.Health()
	aj := healthAppJSON{Name: a.Name, Status: "ok", QueueLength: h.QueueLength}
	show := func(d *deploy.Deployment) *healthDeploymentJSON {
		j := toHealthJSON(d)
		if several {
			j.App = a.Name
		}
		return j
	}
	if h.Running != nil {
		aj.Running = show(h.Running)
	}
	last := h.Last
	if last == nil {
		// After a restart the worker has run nothing yet: the record knows.
		last = s.lastFinished(ctx, a.Name)
	}
	if last != nil {
		aj.LastDeployment = show(last)
	}
	reason := h.Stuck
	if reason != "" {
		aj.Status, aj.Reason = "unhealthy", reason
		if several {
			reason = "app " + a.Name + ": " + reason
		}
	}
	return aj, last, reason
}

// maxProblemsShown bounds the problems /healthz lists.
const maxProblemsShown = 50

// problemFile is the start of a problem line: its app file and line
// ("apps/staging.env:3:", "apps/staging.env:"); problemVariable the
// variable it names at the start of the rest.
var (
	problemFile     = regexp.MustCompile(`^([^:]*\.env)(?::(\d+))?(?::|$)`)
	problemVariable = regexp.MustCompile(`^ *(DEPLOY_[A-Z0-9_]+)\b`)
)

// problemsShown keeps of each problem its file's name (not its folder),
// line and variable: the rest of the message may quote a value, and
// /healthz needs no token. The whole message is in serve's log.
func problemsShown(problems []string) []string {
	var out []string
	for i, p := range problems {
		if i == maxProblemsShown {
			out = append(out, fmt.Sprintf("… and %d more (see the log)", len(problems)-i))
			break
		}
		out = append(out, problemShown(p))
	}
	return out
}

func problemShown(p string) string {
	m := problemFile.FindStringSubmatch(p)
	if m == nil {
		if v := problemVariable.FindStringSubmatch(p); v != nil {
			return v[1] // the folder itself (DEPLOY_APPS_DIR)
		}
		return "an app file failed to load (see the log)"
	}
	shown := filepath.Base(m[1])
	if m[2] != "" {
		shown += ":" + m[2]
	}
	if v := problemVariable.FindStringSubmatch(p[len(m[0]):]); v != nil {
		shown += ": " + v[1]
	}
	return shown
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
