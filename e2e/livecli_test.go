package e2e

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sseSeen is what an event stream told: each event's kind and id, the
// data of its output lines, and its end's.
type sseSeen struct {
	kinds      []string
	ids        []int
	lines, end string
}

// readStream reads an event stream to its end.
func readStream(t *testing.T, resp *http.Response) sseSeen {
	t.Helper()
	var st sseSeen
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		kind := ""
		if n := len(st.kinds); n > 0 {
			kind = st.kinds[n-1]
		}
		switch {
		case strings.HasPrefix(line, "id: "):
			n, _ := strconv.Atoi(strings.TrimPrefix(line, "id: "))
			st.ids = append(st.ids, n)
		case strings.HasPrefix(line, "event: "):
			st.kinds = append(st.kinds, strings.TrimPrefix(line, "event: "))
		case strings.HasPrefix(line, "data: ") && kind == "output":
			st.lines += line + "\n"
		case strings.HasPrefix(line, "data: ") && kind == "end":
			st.end = line
		}
	}
	return st
}

// TestEndToEndServeStreamsCLIDeploy: serve's event stream follows a
// deployment that a command-line deploy beside it runs (real hosts, real
// pip), from the event log in the data folder's database: every event from
// the first, ids without a gap, then the end; not the record's summary.
func TestEndToEndServeStreamsCLIDeploy(t *testing.T) {
	e := newE2E(t, 2)
	sha := e.commit("1.0", nil)
	s := e.serve()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli := exec.CommandContext(ctx, binary, "deploy", "--json")
	cli.Dir, cli.Env = t.TempDir(), e.environ()
	var stdout, stderr bytes.Buffer
	cli.Stdout, cli.Stderr = &stdout, &stderr
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cli.Wait() }()

	var id string
	await(t, "the command line's deployment in serve's list", 3*time.Minute, func() (bool, any) {
		_, list := s.api(http.MethodGet, "/api/deployments")
		deps, _ := list["deployments"].([]any)
		for _, d := range deps {
			if d, _ := d.(map[string]any); d["trigger"] == "cli" {
				id, _ = d["id"].(string)
				return true, nil
			}
		}
		return false, list
	})

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/api/deployments/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	st := readStream(t, resp)
	kinds, ids, lines, end := st.kinds, st.ids, st.lines, st.end
	if err := <-exited; err != nil {
		t.Fatalf("deploy: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"id": "`+id+`"`) && !strings.Contains(stdout.String(), `"id":"`+id+`"`) {
		t.Fatalf("the stream followed %s; the command line deployed:\n%s", id, stdout.String())
	}
	if len(kinds) == 0 || kinds[0] != "deployment" || kinds[len(kinds)-1] != "end" || strings.Contains(strings.Join(kinds, " "), "summary") {
		t.Fatalf("event kinds %v: want the deployment's events from the first, then end (not a summary)", kinds)
	}
	for i, n := range ids {
		if n != i+1 {
			t.Fatalf("event ids %v: want 1, 2, 3 … without a gap", ids)
		}
	}
	if !strings.Contains(end, `"status":"succeeded"`) || !strings.Contains(lines, "pdtestdep") {
		t.Fatalf("end %s; output lines:\n%s\nwant a deployment that succeeded, with pip's output", end, lines)
	}
	t.Logf("serve streamed %d events of the command line's deployment %s (%s)", len(ids), id, sha[:8])
}
