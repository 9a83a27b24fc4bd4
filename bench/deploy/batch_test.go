package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMostAtOnce(t *testing.T) {
	tests := []struct {
		name string
		iv   [][2]float64
		want int
	}{
		{"none", nil, 0},
		{"one", [][2]float64{{0, 1}}, 1},
		{"one after another, touching", [][2]float64{{0, 1}, {1, 2}, {2, 3}}, 1},
		{"two batches of three", [][2]float64{{0, 1}, {0.1, 1.1}, {0.2, 0.9}, {1.2, 2}, {1.3, 2.1}, {1.25, 2.2}}, 3},
		{"nested", [][2]float64{{0, 10}, {1, 2}, {3, 4}, {3.5, 5}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mostAtOnce(tt.iv); got != tt.want {
				t.Errorf("mostAtOnce = %d, want %d", got, tt.want)
			}
		})
	}
}

// result builds a --json result line: per host, steps as name, start
// (seconds after t0) and duration.
func result(t *testing.T, hosts map[string][][3]any) string {
	t.Helper()
	t0 := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	var hs []map[string]any
	for name, steps := range hosts {
		var ss []map[string]any
		for _, st := range steps {
			ss = append(ss, map[string]any{
				"step": st[0], "status": "succeeded", "duration_s": st[2],
				"started": t0.Add(time.Duration(st[1].(float64) * float64(time.Second))),
			})
		}
		hs = append(hs, map[string]any{"host": name, "steps": ss})
	}
	b, err := json.Marshal(map[string]any{"hosts": hs})
	if err != nil {
		t.Fatal(err)
	}
	return "some progress\n" + string(b) + "\n"
}

func TestReadPhases(t *testing.T) {
	out := result(t, map[string][][3]any{
		"web1": {{"connect", 0.0, 0.1}, {"lock", 0.1, 0.1}, {"fetch", 0.2, 0.5}, {"before-switch", 0.7, 0.1}, {"switch", 2.0, 0.1}, {"restart", 3.0, 1.0}, {"retention", 4.0, 0.1}},
		"web2": {{"connect", 0.0, 0.1}, {"prepare", 0.8, 1.0}, {"switch", 2.1, 0.1}, {"restart", 3.2, 2.0}},
		"web3": {{"connect", 0.0, 0.1}, {"prepare", 1.8, 0.2}, {"switch", 2.2, 0.1}, {"restart", 5.5, 1.0}},
	})
	got, ok := readPhases(out)
	if !ok {
		t.Fatal("readPhases: no result read")
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// web1's prepare phase is lock to before-switch's end: 0.1 to 0.8.
	near("prepareMedian", got.prepareMedian, 0.7)
	near("prepareSpan", got.prepareSpan, 2.0-0.1)
	near("restartMedian", got.restartMedian, 1.0)
	near("restartSpan", got.restartSpan, 6.5-3.0)
	if got.mostAtOnce != 2 {
		t.Errorf("mostAtOnce = %d, want 2", got.mostAtOnce)
	}

	if _, ok := readPhases("not json\n"); ok {
		t.Error("readPhases of no result: ok")
	}
}

func TestBatchSize(t *testing.T) {
	tests := []struct {
		batch       string
		scale       int
		size, count int
	}{
		{"10%", 50, 5, 10},
		{"1", 50, 1, 50},
		{"7", 50, 7, 8},
		{"100%", 50, 49, 2},
	}
	for _, tt := range tests {
		size, count := options{restartBatch: tt.batch, scale: tt.scale}.batchSize()
		if size != tt.size || count != tt.count {
			t.Errorf("%s of %d: %d a batch, %d batches; want %d, %d", tt.batch, tt.scale, size, count, tt.size, tt.count)
		}
	}
}

func TestRollbackBatches(t *testing.T) {
	tests := []struct {
		pdEnv []string
		hosts int
		want  int
	}{
		{nil, 8, 8},
		{[]string{"DEPLOY_FETCH=push"}, 8, 8},
		{[]string{"DEPLOY_RESTART_BATCH=2"}, 8, 4},
		{[]string{"DEPLOY_RESTART_BATCH=3"}, 8, 3},
		{[]string{"DEPLOY_RESTART_BATCH=50%"}, 8, 2},
		{[]string{"DEPLOY_RESTART_BATCH=1", "DEPLOY_RESTART_BATCH=4"}, 8, 2},
	}
	for _, tt := range tests {
		if got := (options{pdEnv: tt.pdEnv}).rollbackBatches(tt.hosts); got != tt.want {
			t.Errorf("%v, %d hosts: %d batches, want %d", tt.pdEnv, tt.hosts, got, tt.want)
		}
	}
}

func TestRestartFloor(t *testing.T) {
	rows := []batchRow{{parallel: 1, cpu: 18.5, deployerCPU: 0.9, one: phases{restartMedian: 0.07, prepareMedian: 0.32}}}
	tests := []struct {
		name string
		cost float64
		rows []batchRow
		want []string // in the paragraph; nil: no paragraph
		not  []string // not in it
	}{
		// 50 × 0.088 / 2 = 2.20 s against 2 × (10 × 0.07 + 0.32) = 2.04 s.
		// The hosts' side: 18.5 - 0.9 = 17.6 CPU-seconds, 8.80 s on 2 cores.
		{"above the bound", 0.088, rows, []string{"4.40 CPU-seconds", "at least 2.20 s on 2 cores", "bound of 2.04 s", "6.3 cores", "no deployer meets it here", "own process used 0.90", "other 17.6, 8.80 s on 2 cores", "0.352 CPU-seconds a host"}, []string{"leave"}},
		// 50 × 0.02 / 2 = 0.50 s.
		{"below the bound", 0.02, rows, []string{"at least 0.50 s on 2 cores", "leave 1.54 s of the bound"}, []string{"no deployer"}},
		{"not measured", math.NaN(), rows, nil, nil},
		{"no redeploy", 0.088, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &bench{o: options{scale: 50, restartBatch: "10%"}, restartCost: tt.cost}
			var out strings.Builder
			b.restartFloor(func(f string, a ...any) { fmt.Fprintf(&out, f, a...) }, 5, 10, 2, tt.rows)
			got := out.String()
			if tt.want == nil {
				if got != "" {
					t.Errorf("paragraph %q, want none", got)
				}
				return
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("paragraph %q lacks %q", got, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("paragraph %q has %q", got, n)
				}
			}
		})
	}
}
