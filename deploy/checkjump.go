package deploy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// jumpCheck is one jump host of the pool, checked once for every host
// behind it.
type jumpCheck struct {
	host   Host     // the jump host; its Jump holds the hops before it
	key    string   // the chain up to it (hopKeys)
	behind []string // the hosts whose connections pass through it
}

// hopKeys identifies a chain of jump hosts: user@addr:port of each hop.
func hopKeys(hops []Host) string {
	keys := make([]string, len(hops))
	for i, h := range hops {
		keys[i] = h.User + "@" + h.Address()
	}
	return strings.Join(keys, ",")
}

// jumpLevels lists the pool's jump hosts by how many hops come before them
// (the first hops first), each once per chain, in the order the hosts
// first name them.
func jumpLevels(hosts []Host) [][]*jumpCheck {
	var levels [][]*jumpCheck
	byKey := map[string]*jumpCheck{}
	for _, h := range hosts {
		var before []Host // the hops before, as first named
		for i, hop := range h.Jump {
			key := hopKeys(h.Jump[:i+1])
			j := byKey[key]
			if j == nil {
				jh := hop
				jh.Jump = before[:i:i]
				j = &jumpCheck{host: jh, key: key}
				byKey[key] = j
				if len(levels) == i {
					levels = append(levels, nil)
				}
				levels[i] = append(levels[i], j)
			}
			j.behind = append(j.behind, h.String())
			first := j.host
			first.Jump = nil
			before = append(before, first)
		}
	}
	return levels
}

// jumpChecks is what checkJumps found: a result per jump host, the jump
// hosts that failed, and the connections to those that did not, which
// stay open while the hosts are checked (the keys stay loaded).
type jumpChecks struct {
	results []CheckResult
	failed  map[string]string // hopKeys -> the jump host's name
	conns   []Conn
}

// checkJumps logs into every jump host of the pool, first hops first, so
// that a jump host that fails is reported as itself, once, rather than as
// a login failure of every host behind it.
func (d *Deployer) checkJumps(ctx context.Context, hosts []Host) *jumpChecks {
	jc := &jumpChecks{failed: map[string]string{}}
	var mu sync.Mutex
	for _, level := range jumpLevels(hosts) {
		results := make([]CheckResult, len(level))
		forEachHost(level, maxDials, func(i int, j *jumpCheck) {
			results[i] = CheckResult{Host: j.host.String(), Name: "jump"}
			if name := jc.blocked(j.host.Jump); name != "" {
				results[i].Err = fmt.Errorf("not tried: its jump host %s failed", name)
				return
			}
			start := time.Now()
			c, err := d.Dialer.Dial(ctx, j.host)
			results[i].Duration = time.Since(start)
			results[i].Err = err
			results[i].Detail = jumpDetail(j)
			if err == nil {
				mu.Lock()
				jc.conns = append(jc.conns, c)
				mu.Unlock()
			}
		})
		for i, r := range results {
			if r.Err != nil {
				jc.failed[level[i].key] = r.Host
			}
		}
		jc.results = append(jc.results, results...)
	}
	return jc
}

// blocked returns the name of the first of hops that failed its check, or
// "" when none did.
func (jc *jumpChecks) blocked(hops []Host) string {
	for i := range hops {
		if name, ok := jc.failed[hopKeys(hops[:i+1])]; ok {
			return name
		}
	}
	return ""
}

func (jc *jumpChecks) close() {
	for _, c := range jc.conns {
		c.Close()
	}
}

// jumpDetail says what a jump host's check found, and for which hosts.
func jumpDetail(j *jumpCheck) string {
	var b strings.Builder
	if len(j.host.Jump) > 0 {
		fmt.Fprintf(&b, "through %s: ", jumpNames(j.host.Jump))
	}
	fmt.Fprintf(&b, "reached, host key known, logged in as %s; jump host of ", j.host.User)
	const shown = 3
	b.WriteString(strings.Join(j.behind[:min(len(j.behind), shown)], ", "))
	if len(j.behind) > shown {
		fmt.Fprintf(&b, " and %d more", len(j.behind)-shown)
	}
	return b.String()
}

// jumpNames names a chain of jump hosts: "gw1,gw2".
func jumpNames(hops []Host) string {
	names := make([]string, len(hops))
	for i, h := range hops {
		names[i] = h.String()
	}
	return strings.Join(names, ",")
}
