package webhook

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Deployments is what the server needs from the deployer: the worker that
// queues and runs deployments (deploy.Worker).
type Deployments interface {
	// Submit queues a request; see deploy.Worker.Submit for its errors.
	Submit(ctx context.Context, req deploy.Request) (deploy.Ticket, error)
	// List returns recent deployments, newest first.
	List() []*deploy.Deployment
	// Get returns one deployment.
	Get(id string) (*deploy.Deployment, bool)
	// Health reports the queue and whether deployments can make progress.
	Health() deploy.Health
	// Releases lists every host's releases (a host that cannot be read has
	// Err set); the error is for a deployer that cannot work at all.
	Releases(ctx context.Context) ([]deploy.HostReleases, error)
}

var _ Deployments = (*deploy.Worker)(nil)

// Config is the server's part of the configuration: what every app
// shares. Each app's own part (its secret, branch, repository) is in its
// App.
type Config struct {
	// Insecure accepts unsigned webhooks for an app without a secret
	// (New refuses an app without a secret otherwise).
	Insecure bool
	// APIToken guards /api/*; empty: /api/* answers 404.
	APIToken string
	// BodyLimit bounds a webhook body (default 1 MiB).
	BodyLimit int64
	// Limits are the HTTP server's timeouts and header limit (Open).
	Limits Limits
	// Version is shown by /healthz.
	Version string
	// History, when set, is the lasting record the API and the status
	// page read deployments from (and /healthz checks unless Checks is
	// set); nil: the worker's memory only.
	History History
	// Checks are what else /healthz checks (the database, the queue):
	// each failing one makes it 503, naming the check. Nil with a History:
	// the History, as "history database".
	Checks []Check
	// StateDir must be writable for /healthz to answer 200.
	StateDir string
	Logger   *slog.Logger
	// Guard limits who may call /webhook and how often /webhook and the
	// API may be called; the zero value: anyone, any number of times.
	Guard Guard
	// Live, when set, streams running deployments' events
	// (GET /api/deployments/{id}/events); nil: streams tell the record.
	Live Live
	// EventLog, when set, streams the deployments the hub does not hold
	// from the log the deployers share (another deployer runs them).
	EventLog EventLog
	// StatusPublic shows the status page at / without the API token
	// (its buttons still need it).
	StatusPublic bool
	// Metrics, when set, counts webhook answers and serves GET /metrics;
	// nil: no metrics (/metrics answers 404).
	Metrics Metrics
}

// DefaultBodyLimit is the largest webhook body read. Push payloads are
// KiB: Bitbucket Cloud sends at most 256 KB (5 commits a branch), GitLab
// 20 commits; GitHub lists up to 2048 commits with their changed paths, so
// only a push of hundreds of commits touching thousands of files is
// bigger (GitHub's own cap is 25 MB: raise DEPLOY_WEBHOOK_MAX_BODY then).
const DefaultBodyLimit = 1 << 20

// Server serves the webhook receiver, the API and the health endpoint. It
// wraps echo, so that nothing else in pushdeploy needs to know it.
type Server struct {
	cfg     Config
	apps    Apps
	e       *echo.Echo
	log     *slog.Logger
	started time.Time

	srv  *http.Server
	ln   net.Listener
	done chan error

	checks []*checked // Config.Checks

	stateMu      sync.Mutex
	stateChecked time.Time
	stateErr     error

	lastMu sync.Mutex
	last   map[string]lastEntry // per app: the record's last finished deployment

	page    pageState  // the status page: stream heartbeat, releases cache
	bodies  *bodyGate  // the unverified webhook bodies being read
	streams streamGate // the open event streams
}

// New returns a server for apps (OneApp for a deployer of one app). It
// refuses an app whose secret is empty unless cfg.Insecure is set.
func New(cfg Config, apps Apps) (*Server, error) {
	if apps == nil || len(apps.List()) == 0 {
		return nil, errors.New("no apps to serve")
	}
	for _, a := range apps.List() {
		if a.Secret == "" && !cfg.Insecure {
			return nil, fmt.Errorf("app %s: webhook secret is empty: set DEPLOY_WEBHOOK_SECRET (or DEPLOY_WEBHOOK_INSECURE=true for local experiments)", a.Name)
		}
		if a.Deployments == nil {
			return nil, fmt.Errorf("app %s: no deployer", a.Name)
		}
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	checks := cfg.Checks
	if checks == nil && cfg.History != nil {
		checks = []Check{{Name: "history database", Checker: cfg.History}}
	}
	s := &Server{cfg: cfg, apps: apps, log: log, started: time.Now(), e: echo.New(), bodies: newBodyGate(cfg.Limits, cfg.BodyLimit),
		checks: newChecks(checks)}
	s.e.HideBanner, s.e.HidePort = true, true
	// The peer address as seen on the socket: X-Forwarded-For is only
	// read from the proxies of DEPLOY_TRUSTED_PROXIES.
	s.e.IPExtractor = cfg.Guard.ipExtractor()
	s.e.HTTPErrorHandler = s.errorHandler
	s.e.Use(requestIDs)
	s.e.Use(middleware.Recover())
	s.e.Use(s.accessLog)
	s.e.Use(s.guard()) // allowed networks and rate limits, before any body is read

	s.e.POST("/webhook", s.webhookOnly)
	s.e.POST("/webhook/:app", s.webhookNamed)
	s.e.GET("/healthz", s.healthz)
	if cfg.Metrics != nil {
		s.e.GET("/metrics", s.metrics)
	}
	api := s.e.Group("/api", s.bearer)
	api.POST("/deploy", s.onlyApp("/api/apps/{app}/deploy", s.apiDeploy))
	api.POST("/rollback", s.onlyApp("/api/apps/{app}/rollback", s.apiRollback))
	api.GET("/releases", s.onlyApp("/api/apps/{app}/releases", s.apiReleases))
	api.GET("/apps", s.apiApps)
	api.POST("/apps/:app/deploy", s.named(s.apiDeploy))
	api.POST("/apps/:app/rollback", s.named(s.apiRollback))
	api.GET("/apps/:app/releases", s.named(s.apiReleases))
	api.GET("/deployments", s.apiList)
	api.GET("/deployments/:id", s.apiGet)
	s.pageRoutes()
	return s, nil
}

// Handler returns the server's routes, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.e }

// Open listens on addr and serves in the background until Close.
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	s.ln = ln
	// Timeouts and header size: a slow or idle client is cut off instead
	// of holding a connection forever (limits.go, docs/serve.md).
	s.srv = s.cfg.Limits.server(s.e)
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(ln) }()
	return nil
}

// Addr is the address the server listens on, after Open.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting connections and waits, until ctx ends, for the
// requests in flight.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// httpError is an answer other than success: its status and a message
// that is safe to show (never a secret or an expected signature).
type httpError struct {
	status int
	msg    string
	// retryAfter, when set, is the answer's Retry-After (seconds).
	retryAfter string
}

func (e *httpError) Error() string { return e.msg }

func fail(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// errorHandler is the one place errors become HTTP answers.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "internal error"
	var he *httpError
	var ee *echo.HTTPError
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
		if he.retryAfter != "" {
			c.Response().Header().Set("Retry-After", he.retryAfter)
		}
	case errors.As(err, &ee):
		status, msg = ee.Code, fmt.Sprint(ee.Message)
	default:
		s.log.Error("request failed", "request_id", requestID(c), "path", c.Path(), "error", err)
	}
	_ = c.JSON(status, map[string]string{"error": msg})
}

// requestIDs gives every request an id of our own, answered in
// X-Request-Id and logged as request_id. echo's RequestID middleware would
// keep a client's X-Request-Id instead: any client could then choose the id
// its lines are logged under, and Bitbucket Server sends its delivery id in
// that header (logged apart, as delivery).
func requestIDs(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderXRequestID, rand.Text())
		return next(c)
	}
}

// requestID is the id requestIDs gave the request.
func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// accessLog logs API calls and refused requests; the rest (webhooks, which
// log their decision, and the health checks monitoring sends all day) only
// at debug level.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		level := slog.LevelDebug
		if status >= 400 || strings.HasPrefix(c.Request().URL.Path, "/api/") {
			level = slog.LevelInfo // refused requests and API calls are worth a line
		}
		s.log.Log(c.Request().Context(), level, "http", "request_id", requestID(c), "method", c.Request().Method, "path", unverified(c.Request().URL.Path),
			"status", status, "duration", time.Since(start), "remote", c.RealIP())
		return nil
	}
}

// bearer guards /api/*: 404 when no token is configured (the API does not
// exist), 401 for a missing or wrong token. The comparison takes the same
// time whatever the token: both sides are hashed first.
func (s *Server) bearer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.APIToken == "" {
			return fail(http.StatusNotFound, "not found (the API is off: set DEPLOY_API_TOKEN)")
		}
		got, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.cfg.APIToken))
		if !ok || subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="pushdeploy"`)
			return fail(http.StatusUnauthorized, "missing or wrong bearer token")
		}
		return next(c)
	}
}
