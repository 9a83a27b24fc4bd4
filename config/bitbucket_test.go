package config

import (
	"strings"
	"testing"
)

func TestBitbucketRepo(t *testing.T) {
	for _, tc := range []struct {
		repoURL, webhookRepo string
		workspace, slug      string
	}{
		{"git@bitbucket.org:team/app.git", "", "team", "app"},
		{"ssh://git@bitbucket.org/team/app.git", "", "team", "app"},
		{"https://bitbucket.org/team/app.git", "", "team", "app"},
		{"https://ada@bitbucket.org/team/app", "", "team", "app"},
		{"git@BitBucket.org:team/app", "", "team", "app"},
		{"git@github.com:team/app.git", "", "", ""},
		{"ssh://git@bitbucket.example.com/team/app.git", "", "", ""},
		{"/srv/git/app.git", "", "", ""},
		{"https://bitbucket.org/team/app/extra.git", "", "", ""},
		{"https://bitbucket.org/team", "", "", ""},
		{"/srv/git/app.git", "team/app", "team", "app"},
		{"git@bitbucket.org:team/app.git", "other/site", "other", "site"},
		{"git@bitbucket.org:team/app.git", "justone", "", ""},
	} {
		c := &Config{RepoURL: tc.repoURL, WebhookRepo: tc.webhookRepo}
		w, s, ok := c.BitbucketRepo()
		if w != tc.workspace || s != tc.slug || ok != (tc.workspace != "") {
			t.Errorf("BitbucketRepo(%q, %q) = %q, %q, %v; want %q, %q", tc.repoURL, tc.webhookRepo, w, s, ok, tc.workspace, tc.slug)
		}
	}
}

// TestBitbucketTokenNeedsRepo: a token without a repository to use it on is
// a problem naming both variables, and never quotes the token.
func TestBitbucketTokenNeedsRepo(t *testing.T) {
	setup(t)
	base, _, err := Load("", false)
	if err != nil {
		t.Fatal(err)
	}
	c := *base
	c.BitbucketToken, c.RepoURL, c.WebhookRepo = "s3cret-token", "/srv/git/app.git", ""
	_, err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "DEPLOY_BITBUCKET_TOKEN is set") || !strings.Contains(err.Error(), "DEPLOY_WEBHOOK_REPO") {
		t.Fatalf("Validate: %v, want a problem about DEPLOY_BITBUCKET_TOKEN and DEPLOY_WEBHOOK_REPO", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the problem quotes the token: %v", err)
	}
	c.WebhookRepo = "team/app"
	if _, err := c.Validate(); err != nil {
		t.Errorf("with DEPLOY_WEBHOOK_REPO: %v", err)
	}
}
