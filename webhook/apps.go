package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Apps is the set of apps the server serves. It may change while the
// server runs (serve re-reads DEPLOY_APPS_DIR on SIGHUP): the server asks
// it on every request and keeps no app of its own. Its methods are safe
// for concurrent use.
type Apps interface {
	// List returns the apps, sorted by name; never empty.
	List() []App
	// Get returns the app named name; false when there is none.
	Get(name string) (App, bool)
	// Problems are the app files that failed the last reload (the apps
	// they configure keep their previous configuration), one line each:
	// "FILE:LINE: VARIABLE: what is wrong; fix". /healthz, which needs
	// no token, shows only the file's name, the line and the variable.
	Problems() []string
}

// App is one app the server serves: its webhook's secret, what its
// webhook deploys, and its worker.
type App struct {
	// Name is the app's name in URLs (/webhook/{app}), the API and the
	// history: deploy.DefaultApp for a deployer of one app.
	Name string
	// Secret verifies the app's webhook signatures (its
	// DEPLOY_WEBHOOK_SECRET): each app's webhook is verified with its
	// own secret only. Empty only with Config.Insecure.
	Secret string
	// Branch is the app's release branch; Repo, when set, the only
	// repository (full name) whose pushes count.
	Branch string
	Repo   string
	// Hosts are the app's host names, in deploy order (GET /api/apps).
	Hosts []string
	// Deployments is the app's worker.
	Deployments Deployments
}

// OneApp is the fixed set of one app: a deployer configured without
// DEPLOY_APPS_DIR, and tests. An app without a name is named
// deploy.DefaultApp.
func OneApp(app App) Apps {
	if app.Name == "" {
		app.Name = deploy.DefaultApp
	}
	return oneApp{app}
}

type oneApp struct{ app App }

func (o oneApp) List() []App { return []App{o.app} }

func (o oneApp) Get(name string) (App, bool) {
	if name != o.app.Name {
		return App{}, false
	}
	return o.app, true
}

func (o oneApp) Problems() []string { return nil }

// appHandler serves a request for one app.
type appHandler func(c echo.Context, app App) error

// single returns the app when the server serves exactly one.
func (s *Server) single() (App, bool) {
	list := s.apps.List()
	if len(list) != 1 {
		return App{}, false
	}
	return list[0], true
}

// onlyApp serves a path of the single-app API (/api/deploy…): with
// several apps it answers 404 naming the per-app path to use instead.
func (s *Server) onlyApp(perApp string, h appHandler) echo.HandlerFunc {
	return func(c echo.Context) error {
		app, ok := s.single()
		if !ok {
			return fail(http.StatusNotFound, "not found: this deployer serves several apps: use %s %s (GET /api/apps lists them)",
				c.Request().Method, perApp)
		}
		return h(c, app)
	}
}

// named serves a path with an {app} parameter: 404 for an app that does
// not exist.
func (s *Server) named(h appHandler) echo.HandlerFunc {
	return func(c echo.Context) error {
		app, err := s.appParam(c)
		if err != nil {
			return err
		}
		return h(c, app)
	}
}

// appParam looks up the request's {app}: a 404 that names it when there
// is no such app (only a valid name is repeated).
func (s *Server) appParam(c echo.Context) (App, error) {
	return s.appNamed(c.Param("app"))
}

// appNamed looks up app name, as appParam.
func (s *Server) appNamed(name string) (App, error) {
	if !validAppName(name) {
		return App{}, fail(http.StatusNotFound, "not found: no such app (app names are lower-case letters, digits and -)")
	}
	app, ok := s.apps.Get(name)
	if !ok {
		return App{}, fail(http.StatusNotFound, "not found: no app %s", name)
	}
	return app, nil
}

// validAppName reports whether name is an app name: [a-z0-9][a-z0-9-]{0,62}.
func validAppName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-') {
			return false
		}
	}
	return true
}

// isSingle reports whether the server serves one app: then logs and
// answers look as they did before there were apps.
func (s *Server) isSingle() bool { return len(s.apps.List()) == 1 }

// appAttrs are a request's log attributes: its request id, its app (when
// the server serves several), then attrs.
func (s *Server) appAttrs(c echo.Context, app App, attrs ...any) []any {
	out := []any{"request_id", requestID(c)}
	if !s.isSingle() {
		out = append(out, "app", app.Name)
	}
	return append(out, attrs...)
}

// appJSON is one app in GET /api/apps.
type appJSON struct {
	Name   string `json:"name"`
	Branch string `json:"branch"`
	Repo   string `json:"repo,omitempty"`
	// Hosts are the app's hosts in deploy order with the commit each
	// runs now ("" when it runs none, or could not be asked: then Error).
	Hosts []appHostJSON `json:"hosts"`
	// Disagree is true when the hosts' current releases differ.
	Disagree bool `json:"disagree"`
	// Error is why the hosts could not be listed at all.
	Error          string          `json:"error,omitempty"`
	LastDeployment *deploymentJSON `json:"last_deployment"`
}

// appHostJSON is one host of an app in GET /api/apps.
type appHostJSON struct {
	Host    string `json:"host"`
	Commit  string `json:"commit"`
	Release string `json:"release"`
	Error   string `json:"error,omitempty"`
}

// maxAppListings bounds how many apps' hosts GET /api/apps lists at once.
const maxAppListings = 4

// apiApps serves GET /api/apps: every app, what its hosts run (from the
// releases listing the status page caches) and its last deployment.
func (s *Server) apiApps(c echo.Context) error {
	ctx := c.Request().Context()
	apps := s.apps.List()
	out := make([]appJSON, len(apps))
	errs := make([]error, len(apps))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxAppListings)
	for i, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = s.appSummary(ctx, a)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"apps": out})
}

// appSummary is app as GET /api/apps tells it; the error is the record's
// (a host that cannot be listed is in the answer).
func (s *Server) appSummary(ctx context.Context, a App) (appJSON, error) {
	j := appJSON{Name: a.Name, Branch: a.Branch, Repo: a.Repo, Hosts: []appHostJSON{}}
	last, _, err := s.listPage(ctx, listQuery{Limit: 1, App: a.Name})
	if err != nil {
		return j, fmt.Errorf("app %s: %w", a.Name, err)
	}
	if len(last) > 0 {
		j.LastDeployment = &last[0]
	}
	rep, err := s.releases(ctx, a)
	if err != nil {
		j.Error = err.Error()
	}
	j.Disagree = rep.Disagree
	byHost := make(map[string]deploy.HostReleaseReport, len(rep.Hosts))
	for _, h := range rep.Hosts {
		byHost[h.Host] = h
	}
	names := a.Hosts
	if len(names) == 0 {
		for _, h := range rep.Hosts {
			names = append(names, h.Host)
		}
	}
	for _, name := range names {
		h := byHost[name]
		hj := appHostJSON{Host: name, Release: h.Current, Error: h.Error}
		for _, r := range h.Releases {
			if r.Current {
				hj.Commit = r.Commit
			}
		}
		j.Hosts = append(j.Hosts, hj)
	}
	return j, nil
}
