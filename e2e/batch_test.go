package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestEndToEndRestartBatch: 4 real hosts with app servers, a health check
// and DEPLOY_RESTART_BATCH=2: the deployment's record shows the restarts of
// web1 and web2 overlapping in time, then those of web3 and web4, and the
// second batch switched only once the first one was healthy.
func TestEndToEndRestartBatch(t *testing.T) {
	e := newE2E(t, 4)
	const port = 8000
	e.vars["DEPLOY_RESTART_CMD"] = e.env.RestartCmd(port)
	e.vars["DEPLOY_HEALTH_URL"] = "http://{host}:8000/health"
	e.vars["DEPLOY_HEALTH_TIMEOUT"] = "20s"
	e.vars["DEPLOY_RESTART_BATCH"] = "2"
	sha := e.commit("1.0", nil)
	dep := e.mustDeploy()

	type span struct{ start, end time.Time }
	steps := make([]map[string]span, len(dep.Hosts))
	for i, h := range dep.Hosts {
		steps[i] = map[string]span{}
		for _, s := range h.Steps {
			steps[i][s.Step] = span{s.Started, s.Started.Add(time.Duration(s.Seconds * float64(time.Second)))}
		}
		for _, name := range []string{"switch", "restart", "health"} {
			if _, ok := steps[i][name]; !ok {
				t.Fatalf("%s has no %s step: %+v", h.Host, name, h.Steps)
			}
		}
	}
	overlap := func(a, b span) bool { return a.start.Before(b.end) && b.start.Before(a.end) }
	for _, batch := range [][2]int{{0, 1}, {2, 3}} {
		a, b := steps[batch[0]]["restart"], steps[batch[1]]["restart"]
		if !overlap(a, b) {
			t.Errorf("the restarts of %s (%s, %s) and %s (%s, %s) did not overlap",
				dep.Hosts[batch[0]].Host, a.start.Format(time.StampMicro), a.end.Format(time.StampMicro),
				dep.Hosts[batch[1]].Host, b.start.Format(time.StampMicro), b.end.Format(time.StampMicro))
		}
	}
	for _, later := range []int{2, 3} {
		for _, earlier := range []int{0, 1} {
			if sw, h := steps[later]["switch"], steps[earlier]["health"]; sw.start.Before(h.end) {
				t.Errorf("%s switched at %s, before %s's health check ended at %s",
					dep.Hosts[later].Host, sw.start.Format(time.StampMicro), dep.Hosts[earlier].Host, h.end.Format(time.StampMicro))
			}
			if r, o := steps[later]["restart"], steps[earlier]["restart"]; overlap(r, o) {
				t.Errorf("the restarts of %s and %s (different batches) overlapped", dep.Hosts[later].Host, dep.Hosts[earlier].Host)
			}
		}
	}
	for _, h := range e.env.Hosts {
		if body := httpGet(t, h.HealthURL(port)); !strings.Contains(body, "ok 1.0 "+sha) {
			t.Errorf("%s serves %q, want 1.0", h.Name, body)
		}
	}
}
