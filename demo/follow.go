package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// record is what the demo reads of GET /api/deployments/{id}.
type record struct {
	ID       string     `json:"id"`
	Action   string     `json:"action"`
	Trigger  string     `json:"trigger"`
	Provider string     `json:"provider"`
	Actor    string     `json:"actor"`
	Commit   string     `json:"commit"`
	Release  string     `json:"release"`
	Status   string     `json:"status"`
	Started  *time.Time `json:"started"`
	Finished *time.Time `json:"finished"`
	Error    string     `json:"error"`
	Hosts    []struct {
		Host  string `json:"host"`
		Steps []struct {
			Step     string    `json:"step"`
			Status   string    `json:"status"`
			Started  time.Time `json:"started"`
			Duration float64   `json:"duration_s"`
			Error    string    `json:"error"`
			Output   string    `json:"output_tail"`
		} `json:"steps"`
	} `json:"hosts"`
}

// event is one event of GET /api/deployments/{id}/events.
type event struct {
	Kind     string    `json:"kind"`
	Time     time.Time `json:"time"`
	Status   string    `json:"status"`
	Host     string    `json:"host"`
	Step     string    `json:"step"`
	Duration float64   `json:"duration_s"`
	Error    string    `json:"error"`
}

// progress prints each host's steps once they have ended, once each.
type progress struct {
	printed map[string]bool // host + " " + step
	width   int             // of the host column
	status  string          // the deployment's, as last printed
}

func (p *progress) stepEnded(t time.Time, host, step, status string, seconds float64, errText string) {
	key := host + " " + step
	if status == "running" || status == "queued" || p.printed[key] {
		return
	}
	p.printed[key] = true
	p.width = max(p.width, len(host))
	mark := ""
	if status != "succeeded" {
		mark = "  " + status
	}
	fmt.Printf("%s %-*s %-13s %5.2fs%s\n", t.Local().Format("15:04:05"), p.width, host, step, seconds, mark)
	if errText != "" {
		fmt.Printf("    | %s\n", strings.ReplaceAll(errText, "\n", "\n    | "))
	}
}

// follow prints a deployment's progress per host and step as serve's event
// stream tells it, then reads its record: an error unless it succeeded.
func (s *server) follow(ctx context.Context, id string) error {
	p := &progress{printed: map[string]bool{}}
	fmt.Printf("following %s/api/deployments/%s/events\n", s.url, id)
	if err := s.stream(ctx, id, p); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The record tells the rest.
		fmt.Printf("event stream: %v; reading the record instead\n", err)
	}
	rec, err := s.awaitRecord(ctx, id)
	if err != nil {
		return err
	}
	for _, h := range rec.Hosts {
		for _, st := range h.Steps {
			p.stepEnded(st.Started.Add(time.Duration(st.Duration*float64(time.Second))), h.Host, st.Step, st.Status, st.Duration, st.Error)
		}
	}
	took := ""
	if rec.Started != nil && rec.Finished != nil {
		took = fmt.Sprintf(" in %.1fs", rec.Finished.Sub(*rec.Started).Seconds())
	}
	by := rec.Trigger
	if rec.Provider != "" {
		by += " (" + rec.Provider + ")"
	}
	if rec.Actor != "" && rec.Actor != rec.Trigger {
		by += " by " + rec.Actor
	}
	fmt.Printf("%s %s %s%s: %s, commit %.12s, release %s\n", rec.Action, rec.ID, rec.Status, took, by, rec.Commit, rec.Release)
	if rec.Status != "succeeded" {
		return fmt.Errorf("%s %s %s: %s\n%s", rec.Action, rec.ID, rec.Status, rec.Error, s.logTail())
	}
	return nil
}

// stream reads the deployment's event stream until its end event.
func (s *server) stream(ctx context.Context, id string, p *progress) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/api/deployments/"+id+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var kind string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			switch kind {
			case "end":
				return nil
			case "lagged":
				return errors.New("fell behind the deployment")
			case "step", "deployment":
				var ev event
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
					return fmt.Errorf("%s event: %w", kind, err)
				}
				if ev.Kind == "step" {
					p.stepEnded(ev.Time, ev.Host, ev.Step, ev.Status, ev.Duration, ev.Error)
				} else if ev.Status != p.status && ev.Status != "queued" { // the 202 said queued
					p.status = ev.Status
					fmt.Printf("%s deployment %s\n", ev.Time.Local().Format("15:04:05"), ev.Status)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("closed before the deployment ended")
}

// awaitRecord polls the deployment's record until it has ended.
func (s *server) awaitRecord(ctx context.Context, id string) (record, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	for {
		var rec record
		if err := s.api(ctx, "/api/deployments/"+id, &rec); err != nil {
			return rec, fmt.Errorf("deployment %s: %w\n%s", id, err, s.logTail())
		}
		if rec.Status != "queued" && rec.Status != "running" {
			return rec, nil
		}
		select {
		case <-ctx.Done():
			return rec, fmt.Errorf("deployment %s still %s: %w\n%s", id, rec.Status, ctx.Err(), s.logTail())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
