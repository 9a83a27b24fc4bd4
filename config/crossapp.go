package config

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// crossProblem is a problem between apps of DEPLOY_APPS_DIR.
type crossProblem struct {
	apps []string // the apps it names (ReloadApps undoes their changes)
	msg  string
}

// crossCheck checks what no app file can check alone: two apps deploying
// to the same folder of a host, and DEPLOY_PROMOTE_FROM naming an app that
// exists, another than its own, without a cycle. broken names the app
// files that did not load: an app promoting from one of them is not
// reported (the file's own problems are). A problem between two apps is
// named after the one in fresh (new or changed by a reload) when only one
// is.
func crossCheck(apps []*App, broken, fresh map[string]bool) []crossProblem {
	return append(samePlaces(apps, fresh), promotions(apps, broken)...)
}

// samePlaces finds apps deploying to the same root on the same host: their
// releases, current link and lock would be one.
func samePlaces(apps []*App, fresh map[string]bool) []crossProblem {
	type pair struct{ first, second int }
	owner := make(map[string]int) // place -> index in apps
	shared := make(map[pair][]string)
	var pairs []pair
	for i, a := range apps {
		for _, h := range a.Hosts {
			key := placeKey(h, a.Root, a.LocalUser)
			j, taken := owner[key]
			if !taken {
				owner[key] = i
				continue
			}
			if j == i {
				// Two logins of one pool: the hosts file's business.
				continue
			}
			p := pair{j, i}
			if _, ok := shared[p]; !ok {
				pairs = append(pairs, p)
			}
			shared[p] = append(shared[p], h.Name)
		}
	}
	var cps []crossProblem
	for _, p := range pairs {
		a, b := apps[p.first], apps[p.second]
		at := b.at("DEPLOY_ROOT")
		if fresh[a.Name] && !fresh[b.Name] {
			at = a.at("DEPLOY_ROOT")
		}
		cps = append(cps, crossProblem{apps: []string{a.Name, b.Name}, msg: fmt.Sprintf(
			"%s: DEPLOY_ROOT: %s and %s both deploy to %s in %s; two apps on one host need their own roots: set another DEPLOY_ROOT in %s or %s",
			at, a.Name, b.Name, strings.Join(shared[p], ", "), b.Root, filepath.Base(a.File), filepath.Base(b.File))})
	}
	return cps
}

// placeKey names a folder of a host: its address (canonical) and port, and
// the root, cleaned. A relative root is in the login user's home, so then
// the user counts too.
func placeKey(h deploy.Host, root, localUser string) string {
	root = path.Clean(root)
	if h.Local {
		if !path.IsAbs(root) {
			return "local " + localUser + " " + root
		}
		return "local " + root
	}
	addr := strings.ToLower(h.Addr)
	if ip, err := netip.ParseAddr(h.Addr); err == nil {
		addr = ip.String()
	}
	key := net.JoinHostPort(addr, strconv.Itoa(h.Port))
	if !path.IsAbs(root) {
		key = h.User + "@" + key
	}
	return key + " " + root
}

// promotions checks each DEPLOY_PROMOTE_FROM: it names another app, which
// exists, and no chain of them goes round.
func promotions(apps []*App, broken map[string]bool) []crossProblem {
	byName := make(map[string]*App, len(apps))
	var names []string
	for _, a := range apps {
		byName[a.Name] = a
		names = append(names, a.Name)
	}
	var cps []crossProblem
	for _, a := range apps {
		from := a.PromoteFrom
		switch {
		case from == "":
		case from == a.Name:
			fix := "unset it"
			if _, inFile := a.lines["DEPLOY_PROMOTE_FROM"]; !inFile {
				fix = "it is set outside the app files, so every app gets it: set DEPLOY_PROMOTE_FROM only in the file of the app that promotes"
			}
			cps = append(cps, crossProblem{apps: []string{a.Name}, msg: fmt.Sprintf(
				"%s: DEPLOY_PROMOTE_FROM: %q is this app itself: an app promotes the commits another app deployed; %s",
				a.at("DEPLOY_PROMOTE_FROM"), from, fix)})
		case byName[from] == nil && !broken[from]:
			cps = append(cps, crossProblem{apps: []string{a.Name, from}, msg: fmt.Sprintf(
				"%s: DEPLOY_PROMOTE_FROM: there is no app %q (the apps: %s); name one of them (the app of NAME.env)",
				a.at("DEPLOY_PROMOTE_FROM"), from, strings.Join(names, ", "))})
		}
	}
	return append(cps, cycles(apps, byName)...)
}

// cycles finds the chains of DEPLOY_PROMOTE_FROM that go round (each
// once): none of their apps could ever deploy.
func cycles(apps []*App, byName map[string]*App) []crossProblem {
	var cps []crossProblem
	done := make(map[string]bool)
	for _, start := range apps {
		var chain []string
		onChain := make(map[string]int)
		for a := start; a != nil && !done[a.Name]; a = byName[a.PromoteFrom] {
			if i, seen := onChain[a.Name]; seen {
				if loop := chain[i:]; len(loop) > 1 {
					cps = append(cps, cycleProblem(loop, byName))
				}
				break
			}
			onChain[a.Name] = len(chain)
			chain = append(chain, a.Name)
			if a.PromoteFrom == "" || a.PromoteFrom == a.Name {
				break
			}
		}
		for _, n := range chain {
			done[n] = true
		}
	}
	return cps
}

func cycleProblem(loop []string, byName map[string]*App) crossProblem {
	// Start at the first name, so that the message does not depend on
	// where the search came in.
	i := slices.Index(loop, slices.Min(loop))
	loop = append(loop[i:len(loop):len(loop)], loop[:i]...)
	var steps []string
	for j, n := range loop {
		if j == 0 {
			steps = append(steps, fmt.Sprintf("%s promotes from %s", n, byName[n].PromoteFrom))
		} else {
			steps = append(steps, fmt.Sprintf("%s from %s", n, byName[n].PromoteFrom))
		}
	}
	return crossProblem{apps: slices.Clone(loop), msg: fmt.Sprintf(
		"%s: DEPLOY_PROMOTE_FROM: %s: they go round, so none of them could deploy anything; unset DEPLOY_PROMOTE_FROM in one of them, which then deploys its branch",
		byName[loop[0]].at("DEPLOY_PROMOTE_FROM"), strings.Join(steps, ", "))}
}

// sharedSecrets warns about apps with the same webhook secret: a push
// signed for one would be taken by the other's /webhook/{app} as well.
func sharedSecrets(apps []*App) []string {
	groups := make(map[[sha256.Size]byte][]string)
	var order [][sha256.Size]byte
	for _, a := range apps {
		if a.WebhookSecret == "" {
			continue
		}
		// Hashed: the map holds no secret, only what tells them apart.
		k := sha256.Sum256([]byte(a.WebhookSecret))
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], a.Name)
	}
	var warnings []string
	for _, k := range order {
		if names := groups[k]; len(names) > 1 {
			warnings = append(warnings, fmt.Sprintf(
				"DEPLOY_WEBHOOK_SECRET: the apps %s have the same secret, so a push signed for one is accepted at the others' /webhook/{app} too; give each app its own DEPLOY_WEBHOOK_SECRET in its file",
				strings.Join(names, ", ")))
		}
	}
	return warnings
}

// at names where app a sets variable key: its file and line, or its file
// when it takes key from the environment or the env file.
func (a *App) at(key string) string {
	if line, ok := a.lines[key]; ok {
		return fmt.Sprintf("%s:%d", a.File, line)
	}
	return a.File
}
