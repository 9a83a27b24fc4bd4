package deploy

import (
	"sync"
	"sync/atomic"
)

// maxDials bounds the hosts worked on at once by the fan-outs that log in
// to every host (connect, check, dry run, releases, rollback's verify), so
// a big pool does not trip sshd's MaxStartups on a shared bastion or the
// deployer's file limits.
const maxDials = 16

// forEachHost calls fn for every item (a host, or a host's run), at most
// limit at a time (at least one), and returns when every call has
// returned. Calls start in the items' order, so the first hosts are worked
// on first. fn records its own result (each call its own index); items
// that should not start any more (a failure elsewhere, ctx done) are for
// fn to skip.
func forEachHost[T any](items []T, limit int, fn func(i int, item T)) {
	workers := min(max(limit, 1), len(items))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				fn(i, items[i])
			}
		})
	}
	wg.Wait()
}
