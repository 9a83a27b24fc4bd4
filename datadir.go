package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/webhook"
)

// checkDataDir warns when DEPLOY_DATA_DIR exists and others may enter it.
// It does not change the folder's mode: it may be shared on purpose (a
// backup group), and the warning names the command that tightens it.
// serve creates a missing folder with mode 0700, and the mirror (gitsrc)
// and the history database create what they write inside private (folders
// 0700, files 0600) by themselves, without a process-wide umask, which the
// commands run for `local` hosts would inherit.
func checkDataDir(dir string, log *slog.Logger) {
	fi, err := os.Stat(dir)
	if err != nil {
		return // missing: created private when needed
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		log.Warn(fmt.Sprintf("DEPLOY_DATA_DIR: other users can enter %s (mode %04o), which holds the repository's mirror and the deployment history; run chmod -R go= %s", dir, perm, dir))
	}
}

// serveGuard turns the validated network lists and rate limits of the
// configuration into the web server's guard.
func serveGuard(cfg *config.Config) webhook.Guard {
	return webhook.Guard{
		WebhookAllow:   mustPrefixes(cfg.WebhookAllowCIDRs),
		TrustedProxies: mustPrefixes(cfg.TrustedProxies),
		RateLimit:      float64(cfg.RateLimit),
		RateBurst:      cfg.RateBurst,
	}
}

// mustPrefixes parses CIDR prefixes that config.Validate has checked.
func mustPrefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}
