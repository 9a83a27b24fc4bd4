package webhook

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Metrics is what the server needs from the metrics (metrics.Collector):
// a count of webhook answers, and the handler of GET /metrics. Its methods
// are safe for concurrent use.
type Metrics interface {
	// WebhookAnswered counts one webhook request. provider is "" when the
	// headers named none; outcome is one of the outcome constants.
	WebhookAnswered(provider, outcome string)
	// Handler serves the metrics in the Prometheus text format.
	Handler() http.Handler
}

// The outcomes of a webhook request, as counted: what the receiver
// decided, one per request.
const (
	outcomeQueued       = "queued"       // a new deployment
	outcomeCoalesced    = "coalesced"    // joined a waiting deployment
	outcomeDuplicate    = "duplicate"    // a redelivery
	outcomeIgnored      = "ignored"      // not a push to the release branch (or a ping)
	outcomeUnauthorized = "unauthorized" // missing or wrong signature or token
	outcomeBadRequest   = "bad_request"  // malformed, or no provider header
	outcomeTooLarge     = "too_large"    // body over the limit
	outcomeUnavailable  = "unavailable"  // queue full, or shutting down
	outcomeError        = "error"        // anything else (the repository could not be asked)
	outcomeForbidden    = "forbidden"    // the client is not in DEPLOY_WEBHOOK_ALLOW_CIDRS
	outcomeRateLimited  = "rate_limited" // the client sent more than DEPLOY_RATE_LIMIT allows
	outcomeNotFound     = "not_found"    // no such app, or /webhook on a deployer of several apps
	outcomeRefused      = "refused"      // a promoted app's push of a commit its source has not deployed everywhere
)

// countWebhook counts one answer when metrics are on.
func (s *Server) countWebhook(provider, outcome string) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.WebhookAnswered(provider, outcome)
	}
}

// metrics serves GET /metrics: without authentication, as Prometheus
// scrapes it (it holds no secret: no payloads, no errors, no tokens).
func (s *Server) metrics(c echo.Context) error {
	s.cfg.Metrics.Handler().ServeHTTP(c.Response(), c.Request())
	return nil
}
