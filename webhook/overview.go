package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// The overview (/ with several apps): every app with what its hosts run,
// its running and last deployment, and its buttons. One event stream
// (GET /overview/events) keeps every app of the page up to date: it tells
// an app's state whenever it changes.

// overviewAppJSON is an app's state on the overview: the page renders it
// first, then the stream sends it again whenever it changes.
type overviewAppJSON struct {
	App         string                  `json:"app"`
	QueueLength int                     `json:"queue_length"`
	Running     *overviewDeploymentJSON `json:"running"`
	Last        *overviewDeploymentJSON `json:"last"`
}

// overviewDeploymentJSON is a deployment on the overview: no error, no
// output (its own page has them), and of each host only its status and
// its step.
type overviewDeploymentJSON struct {
	ID       string             `json:"id"`
	Action   string             `json:"action"`
	Status   string             `json:"status"`
	Commit   string             `json:"commit,omitempty"`
	Release  string             `json:"release,omitempty"`
	Started  *time.Time         `json:"started"`
	Finished *time.Time         `json:"finished"`
	Hosts    []overviewHostJSON `json:"hosts,omitempty"`
}

// overviewHostJSON is a host in a running deployment: its status and the
// step it is at (the last one it started).
type overviewHostJSON struct {
	Host   string `json:"host"`
	Status string `json:"status"`
	Step   string `json:"step,omitempty"`
}

func toOverview(d *deploy.Deployment, hosts bool) *overviewDeploymentJSON {
	if d == nil {
		return nil
	}
	r := deploy.ReportDeployment(d, false)
	j := &overviewDeploymentJSON{ID: r.ID, Action: r.Action, Status: r.Status, Commit: r.Commit, Release: r.Release, Started: r.Started, Finished: r.Finished}
	if hosts {
		for _, h := range d.Hosts {
			hj := overviewHostJSON{Host: h.Host.String(), Status: string(h.Status)}
			if n := len(h.Steps); n > 0 {
				hj.Step = string(h.Steps[n-1].Name)
			}
			j.Hosts = append(j.Hosts, hj)
		}
	}
	return j
}

// overviewState is app's state now: from its worker, and after a restart
// (the worker has run nothing yet) its last deployment from the record.
// With the event log, a deployment another deployer runs is the app's
// running one (its hosts change state here too), and the record's last
// deployment is shown when it is newer than the worker's.
func (s *Server) overviewState(ctx context.Context, app App) overviewAppJSON {
	h := app.Deployments.Health()
	last := h.Last
	if last == nil {
		last = s.lastFinished(ctx, app.Name)
	}
	running := h.Running
	if running == nil && s.cfg.EventLog != nil {
		if d, ok := s.cfg.EventLog.Running(ctx, app.Name); ok {
			if _, here := app.Deployments.Get(d.ID); !here { // this worker's own has ended: the log is behind
				running = d
			}
		}
		if rec := s.lastFinished(ctx, app.Name); rec != nil && (last == nil || rec.Finished.After(last.Finished)) {
			last = rec
		}
	}
	return overviewAppJSON{App: app.Name, QueueLength: h.QueueLength, Running: toOverview(running, true), Last: toOverview(last, false)}
}

// overviewCard is one app as the overview page renders it.
type overviewCard struct {
	Name, Branch string
	State        overviewAppJSON
	Rows         []overviewHostJSON // the app's hosts, with their status in the running deployment
}

func (s *Server) pageOverview(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), pageListTimeout)
	defer cancel()
	data := s.pageBase(c, "Apps")
	for _, a := range s.apps.List() {
		card := overviewCard{Name: a.Name, Branch: a.Branch, State: s.overviewState(ctx, a)}
		for _, name := range a.Hosts {
			row := overviewHostJSON{Host: name}
			if r := card.State.Running; r != nil {
				for _, h := range r.Hosts {
					if h.Host == name {
						row = h
					}
				}
			}
			card.Rows = append(card.Rows, row)
		}
		data.Apps = append(data.Apps, card)
	}
	return s.render(c, http.StatusOK, "overview", data)
}

// overviewStreamKey is what the overview's streams count under in the
// stream gate (as a deployment's streams count under its id): the space
// keeps it apart from every deployment id.
const overviewStreamKey = "overview page"

// overviewPoll is how often an overview stream looks at the apps: their
// workers' state, in memory.
const overviewPoll = 250 * time.Millisecond

// overviewEvents streams the overview (GET /overview/events): an apps
// event with the apps' names (the page reloads when they change, after a
// SIGHUP), then an app event with each app's state, then one whenever an
// app's state changes. It never ends by itself; the client reconnects
// after a broken connection and gets every state again.
func (s *Server) overviewEvents(c echo.Context) error {
	leave, err := s.streams.enter(clientKey(c.RealIP()), overviewStreamKey)
	if err != nil {
		c.Response().Header().Set("Retry-After", streamRetry)
		return err
	}
	defer leave()
	only := c.QueryParam("app") // an app's page follows its app only
	if only != "" {
		if _, err := s.appNamed(only); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	w := newSSE(c)
	poll := time.NewTicker(overviewPoll)
	defer poll.Stop()
	beat := time.NewTicker(s.page.heartbeat)
	defer beat.Stop()
	var names string
	sent := map[string][]byte{} // per app: the state last sent
	for {
		if err := s.overviewChanges(ctx, w, only, &names, sent); err != nil {
			return nil // the client left, or the stream broke: nothing to answer
		}
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
			if err := w.write(": heartbeat\n\n"); err != nil {
				return nil
			}
		case <-poll.C:
		}
	}
}

// overviewChanges writes what changed since the last call: the app names
// (names), and each app (only that one, when only is set) whose state
// differs from what sent holds.
func (s *Server) overviewChanges(ctx context.Context, w *sse, only string, names *string, sent map[string][]byte) error {
	apps := s.apps.List()
	list := make([]string, len(apps))
	for i, a := range apps {
		list[i] = a.Name
	}
	if joined := strings.Join(list, " "); joined != *names {
		if err := w.event(0, "apps", map[string][]string{"apps": list}); err != nil {
			return err
		}
		*names = joined
		clear(sent) // forget removed apps
	}
	for _, a := range apps {
		if only != "" && a.Name != only {
			continue
		}
		raw, err := json.Marshal(s.overviewState(ctx, a))
		if err != nil {
			return err
		}
		if bytes.Equal(raw, sent[a.Name]) {
			continue
		}
		if err := w.write("event: app\ndata: " + string(raw) + "\n\n"); err != nil {
			return err
		}
		sent[a.Name] = raw
	}
	return nil
}
