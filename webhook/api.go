package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// deployBody is POST /api/deploy's optional body. From (POST
// /api/apps/{app}/deploy) names another app whose hosts' commit to
// deploy.
type deployBody struct {
	Commit string   `json:"commit"`
	Hosts  []string `json:"hosts"`
	From   string   `json:"from"`
}

// apiLimit bounds API request bodies: they are tiny.
const apiLimit = 64 << 10

// maxHosts and maxHostName bound POST /api/deploy's hosts: a hosts-file
// entry is one line of at most [user@]host:port.
const (
	maxHosts    = 1000
	maxHostName = 300
)

// decodeBody decodes an API body into v: one JSON object (or null), only
// known fields, nothing after it.
func decodeBody(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// validHosts checks POST /api/deploy's hosts before the worker looks them
// up, so that a huge or hostile list gets a short 400.
func validHosts(hosts []string) error {
	if len(hosts) > maxHosts {
		return fmt.Errorf("%d hosts; at most %d", len(hosts), maxHosts)
	}
	for i, h := range hosts {
		switch {
		case h == "":
			return fmt.Errorf("hosts[%d] is empty", i)
		case len(h) > maxHostName:
			return fmt.Errorf("hosts[%d] is longer than %d bytes", i, maxHostName)
		case strings.ContainsFunc(h, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return fmt.Errorf("hosts[%d] %q contains a control character", i, h)
		}
	}
	return nil
}

func (s *Server) apiDeploy(c echo.Context, app App) error {
	var body deployBody
	raw, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, apiLimit))
	if err != nil {
		return fail(http.StatusRequestEntityTooLarge, "body over %d bytes", apiLimit)
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := decodeBody(raw, &body); err != nil {
			return fail(http.StatusBadRequest, `body: %v (expected {"commit": "<sha>", "hosts": ["web1"]}, both optional; or {"from": "<app>"})`, err)
		}
	}
	if err := validHosts(body.Hosts); err != nil {
		return fail(http.StatusBadRequest, "hosts: %v", err)
	}
	if body.Commit != "" {
		if err := deploy.ValidCommitPrefix(body.Commit); err != nil {
			return fail(http.StatusBadRequest, "commit: %v", err)
		}
	}
	if body.From != "" {
		if !validAppName(body.From) {
			return fail(http.StatusBadRequest, "from: %s is not an app name", printable(body.From))
		}
		if body.Commit != "" {
			return fail(http.StatusBadRequest, "from and commit: give one of them (from deploys the commit that app's hosts run)")
		}
		if _, ok := s.apps.Get(body.From); !ok {
			return fail(http.StatusBadRequest, "from: there is no app %s (GET /api/apps lists them)", body.From)
		}
	}
	ticket, err := app.Deployments.Submit(c.Request().Context(), deploy.Request{
		Trigger: deploy.TriggerAPI, Actor: "api", Push: deploy.Push{Branch: app.Branch, Commit: body.Commit}, Hosts: body.Hosts, From: body.From,
	})
	if ok, aerr := s.apiRefused(c, app, ticket, err); ok {
		return aerr
	}
	if err != nil {
		return fromError(body.From, err)
	}
	s.log.Info("api deploy "+ticket.Status, s.appAttrs(c, app, "deployment", ticket.ID, "commit", ticket.Commit, "hosts", body.Hosts, "from", body.From)...)
	return c.JSON(http.StatusAccepted, answer{Status: "queued", Deployment: ticket.ID, Commit: ticket.Commit})
}

// fromError answers a deploy request's error: as submitError, except
// that with from, an error the worker did not type is the other app's
// state (its hosts disagree, or one cannot be read): 409, as it is.
func fromError(from string, err error) error {
	var ce *deploy.CommitError
	var re *deploy.RequestError
	var ue *deploy.UnavailableError
	if from == "" || errors.As(err, &ce) || errors.As(err, &re) || errors.Is(err, deploy.ErrQueueFull) ||
		errors.Is(err, deploy.ErrClosed) || errors.Is(err, context.Canceled) || errors.As(err, &ue) {
		return submitError(err)
	}
	return fail(http.StatusConflict, "%v", err)
}

// rollbackBody is POST /api/rollback's optional body.
type rollbackBody struct {
	Release string `json:"release"`
}

func (s *Server) apiRollback(c echo.Context, app App) error {
	var body rollbackBody
	raw, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, apiLimit))
	if err != nil {
		return fail(http.StatusRequestEntityTooLarge, "body over %d bytes", apiLimit)
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := decodeBody(raw, &body); err != nil {
			return fail(http.StatusBadRequest, `body: %v (expected {"release": "YYYYMMDDHHMMSS-abcdef0"}, optional)`, err)
		}
	}
	if body.Release != "" {
		if err := deploy.ValidReleaseName(body.Release); err != nil {
			return fail(http.StatusBadRequest, "release: %v", err)
		}
	}
	ticket, err := app.Deployments.Submit(c.Request().Context(), deploy.Request{
		Action: deploy.ActionRollback, Trigger: deploy.TriggerAPI, Actor: "api", Release: body.Release,
	})
	if err != nil {
		return submitError(err)
	}
	s.log.Info("api rollback "+ticket.Status, s.appAttrs(c, app, "deployment", ticket.ID, "release", body.Release)...)
	return c.JSON(http.StatusAccepted, answer{Status: "queued", Deployment: ticket.ID})
}

func (s *Server) apiReleases(c echo.Context, app App) error {
	hosts, err := app.Deployments.Releases(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, deploy.ReportReleases(hosts))
}

// deploymentJSON is a deployment in API answers: the shape `deploy --json`
// prints too.
type deploymentJSON = deploy.DeploymentReport

func toJSON(d *deploy.Deployment, withHosts bool) deploymentJSON {
	return deploy.ReportDeployment(d, withHosts)
}

var errStateDir = errors.New("state directory is not writable")
