package webhook

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// History is the lasting record of deployments (history.Store): what the
// API and the status page read, so that they still show deployments after
// a restart. Its methods are safe for concurrent use.
type History interface {
	// Deployments returns the deployments f selects, newest first,
	// without their hosts; an error when the record cannot be read.
	Deployments(ctx context.Context, f deploy.Filter) ([]*deploy.Deployment, error)
	// Deployment returns one deployment with its hosts and steps; false
	// (and no error) when there is none with that id.
	Deployment(ctx context.Context, id string) (*deploy.Deployment, bool, error)
	// Check returns an error when the record cannot be written.
	Check(ctx context.Context) error
}

// Paging of GET /api/deployments.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// listQuery selects deployments for the API and the status page.
type listQuery struct {
	Limit int // 0: defaultListLimit
	// Before is a deployment id: the page after it (newest first).
	Before string
	Status deploy.Status
	Commit string // a prefix, lower-case hex
	Since  time.Time
	App    string // "": every app's
}

// listable are the statuses a deployment can have (hosts and steps have
// more).
var listable = []deploy.Status{deploy.StatusQueued, deploy.StatusRunning, deploy.StatusSucceeded,
	deploy.StatusFailed, deploy.StatusCancelled, deploy.StatusInterrupted}

// parseListQuery reads GET /api/deployments' parameters; a bad one is a
// 400 that names it.
func parseListQuery(v url.Values) (listQuery, error) {
	var q listQuery
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return q, fail(http.StatusBadRequest, "limit: %q is not a number from 1 to %d", s, maxListLimit)
		}
		q.Limit = n
	}
	if s := v.Get("before"); s != "" {
		if len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '-') }) {
			return q, fail(http.StatusBadRequest, "before: %q is not a deployment id", s)
		}
		q.Before = s
	}
	if s := v.Get("status"); s != "" {
		if !slices.Contains(listable, deploy.Status(s)) {
			return q, fail(http.StatusBadRequest, "status: %q is not one of %v", s, listable)
		}
		q.Status = deploy.Status(s)
	}
	if s := v.Get("commit"); s != "" {
		s = strings.ToLower(s)
		if len(s) > 40 || strings.Trim(s, "0123456789abcdef") != "" {
			return q, fail(http.StatusBadRequest, "commit: %q is not a commit prefix (1 to 40 hex digits)", v.Get("commit"))
		}
		q.Commit = s
	}
	if s := v.Get("app"); s != "" {
		if !validAppName(s) {
			return q, fail(http.StatusBadRequest, "app: %s is not an app name (lower-case letters, digits and -)", printable(s))
		}
		q.App = s
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fail(http.StatusBadRequest, "since: %q is not an RFC 3339 time (e.g. 2026-11-25T20:00:00Z)", s)
		}
		q.Since = t
	}
	return q, nil
}

func (s *Server) apiList(c echo.Context) error {
	q, err := parseListQuery(c.QueryParams())
	if err != nil {
		return err
	}
	list, next, err := s.listPage(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := map[string]any{"deployments": list}
	if next != "" {
		out["next"] = next
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) apiGet(c echo.Context) error {
	d, ok, err := s.getDeployment(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	if !ok {
		return fail(http.StatusNotFound, "no deployment %q", c.Param("id"))
	}
	return c.JSON(http.StatusOK, d)
}

// listDeployments returns deployments, newest first: the one place the API
// and the status page read the list from.
func (s *Server) listDeployments(ctx context.Context, q listQuery) ([]deploymentJSON, error) {
	list, _, err := s.listPage(ctx, q)
	return list, err
}

// listPage returns one page of deployments and the id to ask for the next
// one with (?before=), "" after the last page. With a History it reads
// the record; the worker's own copies of the deployments it holds win,
// since the record is written a moment after them.
func (s *Server) listPage(ctx context.Context, q listQuery) ([]deploymentJSON, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	f := deploy.Filter{Status: q.Status, Commit: q.Commit, Since: q.Since, App: q.App}
	if q.Before != "" {
		d, ok, err := s.lookup(ctx, q.Before)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			return nil, "", fail(http.StatusBadRequest, "before: no deployment %q", q.Before)
		}
		f.BeforeQueued, f.BeforeID = d.Queued, d.ID
	}
	live := s.live(q.App)
	var deps []*deploy.Deployment
	more := false
	if s.cfg.History == nil {
		for _, d := range live {
			if f.Match(d) {
				deps = append(deps, d)
			}
		}
	} else {
		f.Limit = limit + 1
		stored, err := s.cfg.History.Deployments(ctx, f)
		if err != nil {
			return nil, "", err
		}
		more = len(stored) > limit
		deps = mergeLive(stored, live, f, more)
	}
	slices.SortStableFunc(deps, func(a, b *deploy.Deployment) int {
		switch ka, kb := deploy.Key(a.Queued, a.ID), deploy.Key(b.Queued, b.ID); {
		case deploy.NewerFirst(ka, kb):
			return -1
		case deploy.NewerFirst(kb, ka):
			return 1
		}
		return 0
	})
	if len(deps) > limit {
		deps, more = deps[:limit], true
	}
	out := make([]deploymentJSON, 0, len(deps))
	for _, d := range deps {
		out = append(out, toJSON(d, false))
	}
	next := ""
	if more && len(deps) > 0 {
		next = deps[len(deps)-1].ID
	}
	return out, next, nil
}

// mergeLive puts the worker's copies in place of the stored rows they
// match, and adds the deployments the record has not heard of yet, as far
// as they fall within the page (full: the store had more rows than fit).
func mergeLive(stored, live []*deploy.Deployment, f deploy.Filter, full bool) []*deploy.Deployment {
	byID := make(map[string]*deploy.Deployment, len(live))
	for _, d := range live {
		byID[d.ID] = d
	}
	seen := make(map[string]bool, len(stored))
	var out []*deploy.Deployment
	for _, d := range stored {
		seen[d.ID] = true
		if l, ok := byID[d.ID]; ok {
			d = l
		}
		if f.Match(d) {
			out = append(out, d)
		}
	}
	for _, d := range live {
		if seen[d.ID] || !f.Match(d) {
			continue
		}
		if full {
			last := stored[len(stored)-1]
			if !deploy.NewerFirst(deploy.Key(d.Queued, d.ID), deploy.Key(last.Queued, last.ID)) {
				continue
			}
		}
		out = append(out, d)
	}
	return out
}

// getDeployment returns one deployment with its hosts and steps.
func (s *Server) getDeployment(ctx context.Context, id string) (deploymentJSON, bool, error) {
	d, ok, err := s.lookup(ctx, id)
	if err != nil || !ok {
		return deploymentJSON{}, false, err
	}
	return toJSON(d, true), true, nil
}

// live returns the deployments the workers hold: app's, or every app's
// when app is "".
func (s *Server) live(app string) []*deploy.Deployment {
	if app != "" {
		a, ok := s.apps.Get(app)
		if !ok {
			return nil // a removed app: only the record has its deployments
		}
		return a.Deployments.List()
	}
	var out []*deploy.Deployment
	for _, a := range s.apps.List() {
		out = append(out, a.Deployments.List()...)
	}
	return out
}

// lookup finds a deployment of any app: the workers' live copies first
// (they are ahead of the record), then the record.
func (s *Server) lookup(ctx context.Context, id string) (*deploy.Deployment, bool, error) {
	for _, a := range s.apps.List() {
		if d, ok := a.Deployments.Get(id); ok {
			return d, true, nil
		}
	}
	if s.cfg.History == nil {
		return nil, false, nil
	}
	d, ok, err := s.cfg.History.Deployment(ctx, id)
	if err != nil {
		return nil, false, fmt.Errorf("read the history: %w", err)
	}
	return d, ok, nil
}

// historyCheckEvery bounds how often /healthz writes to the record (and
// runs each of its checks).
const historyCheckEvery = 5 * time.Second

// lastFinished is app's newest finished deployment in the record, for
// /healthz after a restart (the worker's memory is empty then). /healthz
// is public and polled: what the record said is reused for
// historyCheckEvery.
func (s *Server) lastFinished(ctx context.Context, app string) *deploy.Deployment {
	if s.cfg.History == nil {
		return nil
	}
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	if e, ok := s.last[app]; ok && time.Since(e.at) < historyCheckEvery {
		return e.d
	}
	d := s.readLastFinished(ctx, app)
	if s.last == nil || len(s.last) > len(s.apps.List()) {
		s.last = map[string]lastEntry{} // forget removed apps
	}
	s.last[app] = lastEntry{at: time.Now(), d: d}
	return d
}

// lastEntry is what the record said of an app's last finished deployment.
type lastEntry struct {
	at time.Time
	d  *deploy.Deployment
}

func (s *Server) readLastFinished(ctx context.Context, app string) *deploy.Deployment {
	list, err := s.cfg.History.Deployments(ctx, deploy.Filter{Limit: 10, App: app})
	if err != nil {
		return nil
	}
	for _, d := range list {
		if d.Status == deploy.StatusQueued || d.Status == deploy.StatusRunning {
			continue
		}
		if d.Status == deploy.StatusFailed {
			// The list has no hosts: where it failed is in its steps.
			if full, ok, err := s.cfg.History.Deployment(ctx, d.ID); err == nil && ok {
				return full
			}
		}
		return d
	}
	return nil
}
