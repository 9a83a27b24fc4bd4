package webhook

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"
)

// Guard says who may call the server and how often. The zero value lets
// anyone call as often as they like.
type Guard struct {
	// WebhookAllow, when not empty, are the only networks whose clients
	// may call /webhook and /webhook/{app}; others get 403.
	WebhookAllow []netip.Prefix
	// RateLimit is the number of requests a second one client may send to
	// /webhook, and separately to /api/*, the status page's event streams
	// and POST /login, with bursts of
	// RateBurst (at least 1). 0: no limit. An IPv6 client is its /64: one
	// machine usually has the whole network.
	RateLimit float64
	RateBurst int
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For header names the client. Empty: the client is the
	// socket's peer, and X-Forwarded-For is ignored.
	TrustedProxies []netip.Prefix
}

// ipExtractor returns how the client address is found: the socket peer,
// or, behind trusted proxies, the last address of X-Forwarded-For that is
// not a trusted proxy.
func (g Guard) ipExtractor() echo.IPExtractor {
	if len(g.TrustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range g.TrustedProxies {
		p = p.Masked()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// guard is the middleware that applies g: the allowed networks of
// /webhook, then the rate limits. It runs after routing, before any
// handler reads the body or checks a token.
func (s *Server) guard() echo.MiddlewareFunc {
	g := s.cfg.Guard
	limited := func(bucket string) echo.MiddlewareFunc {
		if g.RateLimit <= 0 {
			return nil
		}
		burst := max(g.RateBurst, 1)
		store := middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(g.RateLimit), Burst: burst,
		})
		retry := strconv.Itoa(int(math.Max(1, math.Ceil(1/g.RateLimit))))
		return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
			Store:               store,
			IdentifierExtractor: func(c echo.Context) (string, error) { return clientKey(c.RealIP()), nil },
			DenyHandler: func(c echo.Context, id string, _ error) error {
				c.Response().Header().Set("Retry-After", retry)
				if bucket == "webhook" {
					log, d := s.deliveryLog(c)
					s.countWebhook(d.Provider, outcomeRateLimited)
					log.Warn("too many requests", "decision", "rejected", "reason", "rate limit", "remote", c.RealIP(), "bucket", bucket)
				} else {
					s.log.Warn("too many requests", "request_id", requestID(c), "remote", c.RealIP(), "bucket", bucket)
				}
				return fail(http.StatusTooManyRequests, "too many requests from %s: at most %g a second (bursts of %d); retry after %s s", id, g.RateLimit, burst, retry)
			},
		})
	}
	webhookLimit, apiLimit := limited("webhook"), limited("api")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		webhook, api := next, next
		if webhookLimit != nil {
			webhook, api = webhookLimit(next), apiLimit(next)
		}
		return func(c echo.Context) error {
			switch p := c.Path(); {
			case p == "/webhook" || p == "/webhook/:app":
				if !g.allowed(c.RealIP()) {
					log, d := s.deliveryLog(c)
					s.countWebhook(d.Provider, outcomeForbidden)
					log.Warn("webhook refused: the client is not in DEPLOY_WEBHOOK_ALLOW_CIDRS", "decision", "rejected", "reason", "client not allowed", "remote", c.RealIP())
					return fail(http.StatusForbidden, "forbidden: %s may not call /webhook", c.RealIP())
				}
				return webhook(c)
			case strings.HasPrefix(p, "/api/") || (p == "/login" && c.Request().Method == http.MethodPost) || p == "/deployments/:id/events" || p == "/overview/events":
				// The status page's event stream is the API's, for the
				// page: it counts the same (and is public with
				// DEPLOY_STATUS_PUBLIC).
				return api(c)
			}
			return next(c)
		}
	}
}

// allowed says whether ip may call /webhook.
func (g Guard) allowed(ip string) bool {
	if len(g.WebhookAllow) == 0 {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range g.WebhookAllow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientKey is the rate limit bucket of ip: the address itself, or its /64
// for IPv6.
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return fmt.Sprint(p)
}
