package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// The events a notification tells.
const (
	eventStarted   = "deployment.started"
	eventSucceeded = "deployment.succeeded"
	eventFailed    = "deployment.failed"
	// eventRefused: recorded, never run (promotion: DEPLOY_PROMOTE_FROM).
	eventRefused = "deployment.refused"
)

// Payload is the JSON body POSTed to DEPLOY_NOTIFY_URL. Text is what Slack
// (and Mattermost, Rocket.Chat, Google Chat…) shows, with &, < and >
// escaped as Slack requires; the other fields are for programs, as they
// are. It never holds a secret; Error is the first line of the
// error only (the failing command's output is on the status page).
type Payload struct {
	Text  string `json:"text"`
	Event string `json:"event"`
	// App is the deployment's app: "default" for a deployer with one app.
	App        string   `json:"app"`
	Deployment string   `json:"deployment"`
	Action     string   `json:"action"`
	Status     string   `json:"status"`
	Commit     string   `json:"commit,omitempty"`
	Release    string   `json:"release,omitempty"`
	Branch     string   `json:"branch,omitempty"`
	Trigger    string   `json:"trigger,omitempty"`
	Provider   string   `json:"provider,omitempty"`
	Actor      string   `json:"actor,omitempty"`
	Hosts      []string `json:"hosts"`
	// Duration is in seconds, at the end only.
	Duration   *float64 `json:"duration_s,omitempty"`
	FailedHost string   `json:"failed_host,omitempty"`
	FailedStep string   `json:"failed_step,omitempty"`
	Error      string   `json:"error,omitempty"`
	URL        string   `json:"url,omitempty"`

	// cause is the error without the host and step: what the text says
	// after naming them.
	cause string
}

func chatBody(d *deploy.Deployment, event, link string) ([]byte, error) {
	return json.Marshal(payload(d, event, link))
}

func payload(d *deploy.Deployment, event, link string) Payload {
	p := Payload{
		Event: event, App: d.App, Deployment: d.ID, Action: action(d), Status: string(d.Status),
		Commit: d.Release.Commit, Release: d.ReleaseName, Branch: d.Release.Branch,
		Trigger: string(d.Request.Trigger), Provider: d.Request.Provider, Actor: d.Request.Actor,
		Hosts: []string{}, URL: link,
	}
	if p.App == "" {
		p.App = deploy.DefaultApp
	}
	if p.Branch == "" {
		p.Branch = d.Request.Push.Branch
	}
	for _, h := range d.Hosts {
		p.Hosts = append(p.Hosts, h.Host.String())
	}
	if event != eventStarted && !d.Started.IsZero() {
		// A refused deployment never started: it has no duration.
		secs := d.Finished.Sub(d.Started).Round(100 * time.Millisecond).Seconds()
		p.Duration = &secs
	}
	if d.Err != nil {
		p.Error = firstLine(d.Err.Error())
		p.cause = p.Error
		var se *deploy.StepError
		if errors.As(d.Err, &se) {
			p.cause = firstLine(se.Err.Error())
		}
		p.FailedHost, p.FailedStep = d.FailedAt()
	}
	p.Text = slackEscape(text(p))
	return p
}

// slackEscape escapes &, < and > as Slack's text requires: unescaped, an
// actor named "<!channel>" would notify the whole channel, and "<url|x>"
// would be a link. The text holds no control sequence of its own, so
// escaping all of it escapes every free-text field in it (actor, branch,
// error, host names).
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

func action(d *deploy.Deployment) string {
	if d.Action == "" {
		return string(deploy.ActionDeploy)
	}
	return string(d.Action)
}

// firstLine is the first line of s, at most 300 characters.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// text is the one-line summary, e.g.
//
//	pushdeploy: deploy of release 4f56267 to 2 host(s) succeeded in 11.8s (webhook, Ada) https://…/deployments/…
//
// naming the app when the deployer has several:
//
//	pushdeploy: production: deploy of main 4f56267 to 3 host(s) succeeded in 9.2s (api, ada) https://…
func text(p Payload) string {
	var b strings.Builder
	b.WriteString("pushdeploy: ")
	if p.App != deploy.DefaultApp {
		b.WriteString(p.App + ": ")
	}
	b.WriteString(what(p))
	switch p.Event {
	case eventStarted:
		b.WriteString(" started")
	case eventRefused:
		fmt.Fprintf(&b, " REFUSED: %s", p.Error)
	case eventSucceeded:
		fmt.Fprintf(&b, " succeeded in %s", seconds(p.Duration))
	default:
		fmt.Fprintf(&b, " FAILED after %s", seconds(p.Duration))
		switch {
		case p.FailedHost != "":
			fmt.Fprintf(&b, " on %s at %s: %s", p.FailedHost, p.FailedStep, p.cause)
		case p.Error != "":
			fmt.Fprintf(&b, ": %s", p.Error)
		}
	}
	if who := by(p); who != "" {
		fmt.Fprintf(&b, " (%s)", who)
	}
	if p.URL != "" {
		b.WriteString(" " + p.URL)
	}
	return b.String()
}

// what says what the deployment does: "deploy of release 4f56267 to 2
// host(s)", "rollback to 20261125183400-1a2b3c4 (1a2b3c4) on 2 host(s)".
func what(p Payload) string {
	hosts := fmt.Sprintf("%d host(s)", len(p.Hosts))
	if p.Action == string(deploy.ActionRollback) {
		switch {
		case p.Release != "":
			return fmt.Sprintf("rollback of %s to %s (%s) on %s", p.Branch, p.Release, short(p.Commit), hosts)
		default:
			return fmt.Sprintf("rollback of %s to each host's previous release on %s", p.Branch, hosts)
		}
	}
	if p.Commit == "" {
		return fmt.Sprintf("deploy of %s to %s", p.Branch, hosts)
	}
	return fmt.Sprintf("deploy of %s %s to %s", p.Branch, short(p.Commit), hosts)
}

func by(p Payload) string {
	parts := []string{}
	if p.Trigger != "" {
		parts = append(parts, p.Trigger)
	}
	if p.Actor != "" {
		parts = append(parts, p.Actor)
	}
	return strings.Join(parts, ", ")
}

func seconds(d *float64) string {
	if d == nil {
		return "?"
	}
	return fmt.Sprintf("%.1fs", *d)
}

// buildStatus is the body of a Bitbucket Cloud build status
// (POST …/commit/{commit}/statuses/build). A status with the same key
// replaces the earlier one: INPROGRESS, then SUCCESSFUL or FAILED.
type buildStatus struct {
	Key         string `json:"key"`
	State       string `json:"state"`
	Name        string `json:"name"`
	URL         string `json:"url"`
	Description string `json:"description"`
}

// statusMessage is the build status of d's commit for event. The link is
// the status page; without one, the commit's page on bitbucket.org
// (Bitbucket requires a url).
func (n *Notifier) statusMessage(d *deploy.Deployment, event, link string) (message, error) {
	b := n.cfg.Bitbucket
	p := payload(d, event, link)
	if link == "" {
		link = "https://bitbucket.org/" + url.PathEscape(b.Workspace) + "/" + url.PathEscape(b.RepoSlug) + "/commits/" + url.PathEscape(p.Commit)
	}
	st := buildStatus{
		Key:  statusKey(p.App, p.Branch),
		Name: "pushdeploy: " + p.Branch,
		URL:  link,
	}
	if p.App != deploy.DefaultApp {
		st.Name = "pushdeploy: " + p.App + " (" + p.Branch + ")"
	}
	switch event {
	case eventStarted:
		st.State, st.Description = "INPROGRESS", fmt.Sprintf("deploying to %d host(s) (%s)", len(p.Hosts), d.ID)
	case eventRefused:
		// Not a failure of the commit: it was not deployed (yet).
		st.State, st.Description = "STOPPED", "not deployed: "+p.cause
	case eventSucceeded:
		st.State, st.Description = "SUCCESSFUL", fmt.Sprintf("deployed as %s to %d host(s) in %s", p.Release, len(p.Hosts), seconds(p.Duration))
	default:
		st.State, st.Description = "FAILED", "deploy failed"
		if p.FailedHost != "" {
			st.Description += " on " + p.FailedHost + " at " + p.FailedStep
		}
		if p.cause != "" {
			st.Description += ": " + p.cause
		}
	}
	body, err := json.Marshal(st)
	if err != nil {
		return message{}, err
	}
	u := trimSlash(b.APIURL) + "/repositories/" + url.PathEscape(b.Workspace) + "/" + url.PathEscape(b.RepoSlug) +
		"/commit/" + url.PathEscape(p.Commit) + "/statuses/build"
	return message{url: u, body: body, what: "build status " + st.State + " " + short(p.Commit) + " " + d.ID}, nil
}

// statusKey is the build status key for app and branch: one status per
// app and branch that pushdeploy deploys, updated by each deployment of
// that commit (staging and production may deploy the same branch: each
// has its own status); kept to 40 characters, short enough for any
// Bitbucket. The default app's key is "pushdeploy-<branch>", cut at 40 as
// it always was; another app's long key ends in a hash of the whole, so
// that two apps whose names start alike keep apart.
func statusKey(app, branch string) string {
	if app == deploy.DefaultApp || app == "" {
		k := "pushdeploy-" + branch
		if len(k) > 40 {
			k = k[:40]
		}
		return k
	}
	k := "pushdeploy-" + app + "-" + branch
	if len(k) > 40 {
		sum := sha256.Sum256([]byte(k))
		k = k[:31] + "-" + hex.EncodeToString(sum[:4])
	}
	return k
}
