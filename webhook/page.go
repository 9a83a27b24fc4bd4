package webhook

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// The status page: server-rendered HTML with a little plain JS that
// follows a deployment's event stream and calls the API for the buttons.
// Nothing is built: the files under page/ are served as they are.

//go:embed page/*.html
var pageFiles embed.FS

//go:embed page/static
var staticFiles embed.FS

var pageTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"short":    shortCommit,
	"duration": deploymentDuration,
	"seconds":  func(s float64) string { return formatDuration(time.Duration(s * float64(time.Second))) },
	"when": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}).ParseFS(pageFiles, "page/*.html"))

// pageState is the status page's share of the server.
type pageState struct {
	heartbeat time.Duration

	// Listing releases logs in to every host: per app, one listing at a
	// time, reused for releasesFresh (rel holds only apps that exist).
	relMu sync.Mutex
	rel   map[string]*releasesCache
}

// releasesCache is an app's last listing of its hosts' releases.
type releasesCache struct {
	mu  sync.Mutex
	at  time.Time
	rep deploy.ReleasesReport
	err error
}

const (
	releasesFresh   = 15 * time.Second
	releasesTimeout = 45 * time.Second
	pageListTimeout = 10 * time.Second
)

// contentSecurity allows this server's own scripts, styles and
// connections only: no inline script, no framing.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func (s *Server) pageRoutes() {
	s.page.heartbeat = defaultHeartbeat
	// The API's stream also takes the page's session, so that the page
	// and scripts of a signed-in browser can follow deployments.
	s.e.GET("/api/deployments/:id/events", s.apiEvents, s.bearerOrSession)

	html, data := s.pageAuth(true), s.pageAuth(false)
	s.e.GET("/", s.pageIndex, s.pageHeaders, html)
	s.e.GET("/apps/:app", s.named(s.pageApp), s.pageHeaders, html)
	s.e.GET("/overview/events", s.overviewEvents, s.pageHeaders, data)
	s.e.GET("/deployments/:id", s.pageDeployment, s.pageHeaders, html)
	s.e.GET("/deployments/:id/events", s.apiEvents, s.pageHeaders, data)
	s.e.GET("/releases.json", s.onlyApp("/apps/{app}/releases.json", s.pageReleases), s.pageHeaders, data)
	s.e.GET("/apps/:app/releases.json", s.named(s.pageReleases), s.pageHeaders, data)
	s.e.GET("/login", s.pageLogin, s.pageHeaders)
	s.e.POST("/login", s.pageLoginPost, s.pageHeaders)
	s.e.POST("/logout", s.pageLogout, s.pageHeaders)
	s.e.GET("/static/:file", s.pageStatic, s.pageHeaders)
}

func (s *Server) pageHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurity)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		return next(c)
	}
}

// pageAuth guards the page (html) and its data: open when
// DEPLOY_STATUS_PUBLIC is set; otherwise the session cookie or the bearer
// token. Without an API token and not public, the page is off.
func (s *Server) pageAuth(html bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			switch {
			case s.cfg.StatusPublic, s.cfg.APIToken != "" && (s.validBearer(c) || s.validSession(c)):
				return next(c)
			case s.cfg.APIToken == "" && html:
				return s.render(c, http.StatusNotFound, "message", pageData{Title: "Status page off", Off: true})
			case s.cfg.APIToken == "":
				return fail(http.StatusNotFound, "not found (the status page is off: set DEPLOY_STATUS_PUBLIC=true or DEPLOY_API_TOKEN)")
			case html:
				return c.Redirect(http.StatusSeeOther, "/login?next="+urlQueryEscape(c.Request().URL.RequestURI()))
			default:
				return fail(http.StatusUnauthorized, "sign in on the status page, or send the API token as a bearer token")
			}
		}
	}
}

// bearerOrSession guards the API's event stream: like bearer, but the
// status page's session cookie also counts (a GET that changes nothing).
func (s *Server) bearerOrSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.APIToken != "" && s.validSession(c) {
			return next(c)
		}
		return s.bearer(next)(c)
	}
}

// pageData is what the templates see. It never holds the token.
type pageData struct {
	Title       string
	Deployments []deploymentJSON
	D           *deploymentJSON
	// App is the app of an app's page, or of a deployment's page, when
	// the deployer serves several apps; "" with one app.
	App string
	// APIBase is where the page's buttons POST deploy and rollback:
	// /api with one app, /api/apps/{app} with several. ReleasesSrc is
	// where it asks for the hosts' releases.
	APIBase     string
	ReleasesSrc string
	// Apps are the overview's apps (several apps, at /).
	Apps []overviewCard
	// CanAct: the API exists, so the buttons can work (with the token).
	CanAct bool
	// SignedIn: a session cookie came with the request.
	SignedIn bool
	Public   bool
	Off      bool
	Message  string
	Next     string
	Version  string
}

func (s *Server) pageBase(c echo.Context, title string) pageData {
	return pageData{
		Title: title, CanAct: s.cfg.APIToken != "", SignedIn: s.cfg.APIToken != "" && s.validSession(c),
		Public: s.cfg.StatusPublic, Version: s.cfg.Version, APIBase: "/api", ReleasesSrc: "/releases.json",
	}
}

// forApp points a page's buttons and releases at app's per-app paths,
// when the deployer serves several apps.
func (s *Server) forApp(data *pageData, app string) {
	if s.isSingle() {
		return
	}
	data.App, data.APIBase, data.ReleasesSrc = app, "/api/apps/"+app, "/apps/"+app+"/releases.json"
}

// render executes a page into memory first, so that a template error
// gives a clean 500 instead of half a page.
func (s *Server) render(c echo.Context, status int, name string, data pageData) error {
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		return fmt.Errorf("page %s: %w", name, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.HTMLBlob(status, buf.Bytes())
}

// pageIndex serves /: the deployments with one app, the overview of
// every app with several.
func (s *Server) pageIndex(c echo.Context) error {
	app, ok := s.single()
	if !ok {
		return s.pageOverview(c)
	}
	return s.pageApp(c, app)
}

// pageApp serves an app's page (/apps/{app}; / with one app): its
// deployments and its hosts' releases, its buttons.
func (s *Server) pageApp(c echo.Context, app App) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), pageListTimeout)
	defer cancel()
	q := listQuery{Limit: 20}
	if !s.isSingle() {
		q.App = app.Name
	}
	list, err := s.listDeployments(ctx, q)
	if err != nil {
		return err
	}
	title := "Deployments"
	if !s.isSingle() {
		title = app.Name + ": deployments"
	}
	data := s.pageBase(c, title)
	s.forApp(&data, app.Name)
	data.Deployments = list
	return s.render(c, http.StatusOK, "index", data)
}

func (s *Server) pageDeployment(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), pageListTimeout)
	defer cancel()
	d, ok, err := s.getDeployment(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if !ok {
		data := s.pageBase(c, "Not found")
		data.Message = "There is no deployment " + c.Param("id") + "."
		return s.render(c, http.StatusNotFound, "message", data)
	}
	data := s.pageBase(c, "Deployment "+d.ID)
	s.forApp(&data, d.App)
	data.D = &d
	return s.render(c, http.StatusOK, "deployment", data)
}

// pageReleases answers the page's request for every host's releases.
func (s *Server) pageReleases(c echo.Context, app App) error {
	rep, err := s.releases(c.Request().Context(), app)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, rep)
}

// releases lists every host's releases of app, at most once per
// releasesFresh (or after each of its deployments ends) and one listing
// at a time: it logs in to every host, so a page that is reloaded, or
// open in many tabs, must not multiply the logins.
func (s *Server) releases(ctx context.Context, app App) (deploy.ReleasesReport, error) {
	rc := s.page.cache(app.Name, len(s.apps.List()))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !rc.at.IsZero() && time.Since(rc.at) < releasesFresh && !endedSince(app.Deployments, rc.at) {
		return rc.rep, rc.err
	}
	// Not the request's own context: a listing that others wait for
	// should not stop because the first one to ask went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releasesTimeout)
	defer cancel()
	hosts, err := app.Deployments.Releases(ctx)
	rc.rep, rc.err, rc.at = deploy.ReportReleases(hosts), err, time.Now()
	if err != nil {
		rc.err = fmt.Errorf("list releases: %w", err)
	}
	return rc.rep, rc.err
}

// cache returns app's releases cache, making it; apps is how many apps
// there are, so that the caches of removed apps are forgotten.
func (p *pageState) cache(app string, apps int) *releasesCache {
	p.relMu.Lock()
	defer p.relMu.Unlock()
	if rc, ok := p.rel[app]; ok {
		return rc
	}
	if p.rel == nil || len(p.rel) >= apps {
		p.rel = map[string]*releasesCache{}
	}
	rc := &releasesCache{}
	p.rel[app] = rc
	return rc
}

// endedSince reports whether a deployment of d ended after t: a listing
// made before then is out of date.
func endedSince(d Deployments, t time.Time) bool {
	last := d.Health().Last
	return last != nil && last.Finished.After(t)
}

func (s *Server) pageStatic(c echo.Context) error {
	name := c.Param("file")
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
	ct, ok := "", false
	for ext, t := range types {
		if strings.HasSuffix(name, ext) {
			ct, ok = t, true
		}
	}
	if !ok || strings.ContainsAny(name, "/\\") {
		return fail(http.StatusNotFound, "not found")
	}
	b, err := staticFiles.ReadFile("page/static/" + name)
	if err != nil {
		return fail(http.StatusNotFound, "not found")
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, ct, b)
}

func shortCommit(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// deploymentDuration is how long a deployment took, or has run so far.
func deploymentDuration(d deploymentJSON) string {
	switch {
	case d.Started == nil:
		return ""
	case d.Finished == nil:
		return formatDuration(time.Since(*d.Started)) + "…"
	default:
		return formatDuration(d.Finished.Sub(*d.Started))
	}
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}
