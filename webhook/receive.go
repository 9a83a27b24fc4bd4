package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// answer is the JSON body of every webhook and deploy answer.
type answer struct {
	Status     string `json:"status"`
	Deployment string `json:"deployment,omitempty"`
	Commit     string `json:"commit,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
}

// webhookOnly serves POST /webhook: the app's webhook when the server
// serves one app; with several, a 404 that names the per-app path (and no
// app: the answer needs no token).
func (s *Server) webhookOnly(c echo.Context) error {
	app, ok := s.single()
	if !ok {
		return s.webhookNotFound(c, fail(http.StatusNotFound, "not found: this deployer serves several apps: send each app's webhook to /webhook/{app}"))
	}
	return s.webhook(c, app)
}

// webhookNamed serves POST /webhook/{app}.
func (s *Server) webhookNamed(c echo.Context) error {
	app, err := s.appParam(c)
	if err != nil {
		return s.webhookNotFound(c, err)
	}
	return s.webhook(c, app)
}

// webhookNotFound answers a webhook for no app, before its body is read.
func (s *Server) webhookNotFound(c echo.Context, err error) error {
	log, d := s.deliveryLog(c)
	s.countWebhook(d.Provider, outcomeNotFound)
	log.Warn("webhook rejected", "decision", "rejected", "reason", "no such app", "path", unverified(c.Request().URL.Path))
	// Closed unread, as any refusal before the body.
	c.Response().Header().Set(echo.HeaderConnection, "close")
	return err
}

// webhook receives a forge's push for app: signature first (the app's own
// secret), then parsing, then the decision, then the queue. It answers in
// milliseconds: the deployment runs in the background.
func (s *Server) webhook(c echo.Context, app App) error {
	r := c.Request()
	log, d := s.deliveryLog(c)
	if !s.isSingle() {
		log = log.With("app", app.Name)
	}
	// Counted where the answer is decided; whatever is not decided below
	// (an unexpected error) counts as an error.
	outcome := outcomeError
	defer func() { s.countWebhook(d.Provider, outcome) }()

	if err := deploy.ValidDeliveryID(d.ID); err != nil {
		// Refused before its body is read or anything is remembered (and
		// the connection closed: net/http would read the body first).
		c.Response().Header().Set(echo.HeaderConnection, "close")
		log.Warn("webhook rejected", "decision", "rejected", "reason", "bad delivery id", "error", err)
		outcome = outcomeBadRequest
		return fail(http.StatusBadRequest, "%v", err)
	}
	body, release, berr := s.readBody(c)
	if berr != nil {
		log.Warn("webhook rejected", "decision", "rejected", "reason", berr.reason, "error", berr.err.Error())
		outcome = berr.outcome
		return berr.err
	}
	defer release()

	ev, err := Parse(r.Header, body, app.Secret, s.cfg.Insecure)
	var change Change
	if err == nil {
		// Known once the signature holds: an unverified body is not read.
		log = log.With("repo", ev.Repo, "branch", pushedBranch(ev, app.Branch))
		change, err = Decide(ev, app.Branch, app.Repo)
	}
	var sig *SignatureError
	var bad *BadRequestError
	var ign *IgnoredError
	switch {
	case errors.As(err, &sig):
		log.Warn("webhook rejected", "decision", "rejected", "reason", sig.Reason)
		outcome = outcomeUnauthorized
		return fail(http.StatusUnauthorized, "%s", sig.Error())
	case errors.As(err, &bad):
		log.Warn("webhook rejected", "decision", "rejected", "reason", bad.Msg)
		outcome = outcomeBadRequest
		return fail(http.StatusBadRequest, "%s", bad.Msg)
	case errors.As(err, &ign):
		log.Info("webhook ignored", "decision", "ignored", "reason", ign.Reason, "detail", ign.Msg)
		outcome = outcomeIgnored
		return c.JSON(http.StatusOK, answer{Status: "ignored", Reason: ign.Reason, Message: ign.Msg})
	case err != nil:
		return err
	}

	ticket, err := app.Deployments.Submit(r.Context(), deploy.Request{
		Trigger: deploy.TriggerWebhook, Provider: ev.Provider, DeliveryID: ev.DeliveryID, Actor: ev.Actor,
		Push: deploy.Push{Branch: app.Branch}, PayloadCommit: change.Commit,
	})
	var refused *deploy.RefusedError
	if errors.As(err, &refused) {
		// Recorded, not carried out (promotion): 200, so that the forge
		// does not retry what would be refused again.
		log.Info("webhook refused", "decision", "refused", "commit", change.Commit, "deployment", refused.ID, "reason", refused.Reason)
		outcome = outcomeRefused
		return c.JSON(http.StatusOK, answer{Status: "refused", Deployment: refused.ID, Commit: ticket.Commit, Reason: refused.Reason})
	}
	if err != nil {
		log.Error("webhook not queued", "decision", "rejected", "reason", "not queued", "error", err)
		var ue *deploy.UnavailableError
		if errors.Is(err, deploy.ErrQueueFull) || errors.Is(err, deploy.ErrClosed) || errors.Is(err, context.Canceled) || errors.As(err, &ue) {
			outcome = outcomeUnavailable
		}
		return submitError(err)
	}
	log.Info("webhook "+ticket.Status, "decision", ticket.Status, "commit", change.Commit, "deployment", ticket.ID)
	outcome = ticketOutcome(ticket.Status)
	if ticket.Status == "duplicate" {
		// A redelivery: the forge gets its 2xx, nothing is deployed twice.
		return c.JSON(http.StatusOK, answer{Status: "ignored", Reason: "duplicate delivery", Deployment: ticket.ID, Commit: ticket.Commit})
	}
	// "coalesced" joins a deployment that is still queued: for the
	// caller it is queued all the same.
	return c.JSON(http.StatusAccepted, answer{Status: "queued", Deployment: ticket.ID, Commit: ticket.Commit})
}

// deliveryLog returns the logger of a webhook request, with our request id
// and what its headers say (unverified) of provider, event and delivery.
// This is where request headers reach the log: their values are cut
// (unverified), and the log's handler quotes them.
func (s *Server) deliveryLog(c echo.Context) (*slog.Logger, Delivery) {
	d := Identify(c.Request().Header)
	return s.log.With("request_id", requestID(c), "provider", d.Provider, "event", unverified(d.Kind), "delivery", unverified(d.ID)), d
}

// maxUnverified bounds a value from a request that is logged before
// anything is verified: the real ones (event names, delivery ids, paths)
// are far shorter.
const maxUnverified = 100

// unverified is a request value as logged: cut to maxUnverified bytes (on
// a character boundary), with "…" when cut.
func unverified(v string) string {
	if len(v) <= maxUnverified {
		return v
	}
	cut := maxUnverified
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "…"
}

// pushedBranch is the branch a verified push is logged under: the release
// branch when the push changed it, else the branches it changed (at most
// five, comma-separated), "" when it changed none (pings, tags).
func pushedBranch(ev *Event, release string) string {
	var names []string
	for _, c := range ev.Changes {
		switch {
		case c.Branch == "" || c.Tag:
		case c.Branch == release:
			return release
		case !slices.Contains(names, c.Branch):
			names = append(names, c.Branch)
		}
	}
	if len(names) > 5 {
		names = append(names[:5], "…")
	}
	return strings.Join(names, ",")
}

// ticketOutcome is the counted outcome of a queued request.
func ticketOutcome(status string) string {
	switch status {
	case "coalesced":
		return outcomeCoalesced
	case "duplicate":
		return outcomeDuplicate
	}
	return outcomeQueued
}

// refusedJSON is the API's answer to a request promotion turned down.
type refusedJSON struct {
	answer
	Error string `json:"error"`
}

// apiRefused answers a request that promotion turned down (a
// *deploy.RefusedError): 409, with the reason and the deployment that
// records it. ok is false for any other error.
func (s *Server) apiRefused(c echo.Context, app App, ticket deploy.Ticket, err error) (bool, error) {
	var refused *deploy.RefusedError
	if !errors.As(err, &refused) {
		return false, nil
	}
	s.log.Info("api deploy refused", s.appAttrs(c, app, "deployment", refused.ID, "commit", ticket.Commit, "reason", refused.Reason)...)
	return true, c.JSON(http.StatusConflict, refusedJSON{
		answer: answer{Status: "refused", Deployment: refused.ID, Commit: ticket.Commit, Reason: refused.Reason}, Error: refused.Error()})
}

// unavailableRetry is the Retry-After (seconds) of a request answered 503
// because the deployment queue's database cannot be reached.
const unavailableRetry = "10"

// submitError turns the worker's refusals into answers.
func submitError(err error) error {
	var ce *deploy.CommitError
	var re *deploy.RequestError
	var rf *deploy.RefusedError
	var ue *deploy.UnavailableError
	switch {
	case errors.As(err, &ue):
		// Nothing was stored: the forge (or the caller) tries again.
		return &httpError{status: http.StatusServiceUnavailable, retryAfter: unavailableRetry,
			msg: fmt.Sprintf("%v; nothing was queued, retry after %s s", ue, unavailableRetry)}
	case errors.As(err, &rf):
		return fail(http.StatusConflict, "%v", rf)
	case errors.As(err, &ce):
		return fail(http.StatusUnprocessableEntity, "%v", ce)
	case errors.As(err, &re):
		return fail(http.StatusBadRequest, "%v", re)
	case errors.Is(err, deploy.ErrQueueFull), errors.Is(err, deploy.ErrClosed):
		return fail(http.StatusServiceUnavailable, "%v", err)
	case errors.Is(err, context.Canceled):
		return fail(http.StatusServiceUnavailable, "request cancelled")
	default:
		// The repository could not be asked (down, host key, key).
		return fail(http.StatusBadGateway, "checking against the repository: %v", err)
	}
}
