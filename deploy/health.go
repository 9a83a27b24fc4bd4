package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// healthURL is d.HealthURL for host h: "{host}" replaced by its address
// (IPv6 in brackets, as a URL needs it).
func (d *Deployer) healthURL(h Host) string {
	addr := h.Addr
	if strings.Contains(addr, ":") {
		// IPv6: in brackets, and a zone's "%" escaped as a URL needs it.
		addr = "[" + strings.ReplaceAll(addr, "%", "%25") + "]"
	}
	return strings.ReplaceAll(d.HealthURL, "{host}", addr)
}

// checkHealth polls the health URL for the host until it answers 2xx, for
// at most HealthTimeout. It does nothing when no URL is set.
func (r *hostRun) checkHealth(ctx context.Context) error {
	if r.d.HealthURL == "" {
		return nil
	}
	timeout := r.d.HealthTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	url := r.d.healthURL(r.res.Host)
	return r.step(ctx, StepHealth, func(ctx context.Context, out io.Writer) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		client := r.d.HTTPClient
		if client == nil {
			client = defaultHealthClient
		}
		wait := 250 * time.Millisecond
		var last error
		for attempt := 1; ; attempt++ {
			last = probe(ctx, client, url)
			if last == nil {
				fmt.Fprintf(out, "%s answered 2xx (attempt %d)\n", url, attempt)
				return nil
			}
			fmt.Fprintf(out, "attempt %d: %v\n", attempt, last)
			select {
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("health check %s did not answer 2xx within %s (DEPLOY_HEALTH_TIMEOUT): %w", url, timeout, last)
				}
				return ctx.Err()
			case <-time.After(wait):
			}
			if wait < 2*time.Second {
				wait *= 2
			}
		}
	})
}

// defaultHealthClient asks the host directly (no proxy from the
// deployer's environment) and does not follow redirects: a redirect, to a
// login page say, is not a healthy answer.
var defaultHealthClient = &http.Client{
	Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// probe makes one health request, bounded to 10s.
func probe(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "pushdeploy-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode <= 399 && loc != "" {
		return fmt.Errorf("answered %s, a redirect to %s, which is not followed: point DEPLOY_HEALTH_URL at an address that answers 2xx itself", resp.Status, loc)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := strings.TrimSpace(string(body))
		if msg != "" {
			return fmt.Errorf("answered %s: %s", resp.Status, msg)
		}
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
