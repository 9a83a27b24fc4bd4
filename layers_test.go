package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers keeps each library inside the one package that wraps it, and
// the domain free of adapters (style rule 1 and 3). It reads the real import
// graph with go list, so a new import in the wrong place fails here.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/pushdeploy/pushdeploy"
	rules := []struct {
		lib     string   // import path prefix
		allowed []string // packages (relative to the module) that may import it
	}{
		{"github.com/labstack/echo", []string{"webhook"}},
		{"github.com/go-git/", []string{"gitsrc"}},
		{"golang.org/x/crypto/ssh", []string{"deploy/sshrun", "gitsrc", "internal/sshkeys"}},
		{"github.com/kelseyhightower/envconfig", []string{"config"}},
		// bench/webhook reads the queue's tables itself, to check what the
		// deployers committed (its store.go).
		{"modernc.org/sqlite", []string{"history", "queue", "eventlog", "bench/webhook"}},
		{"github.com/jackc/pgx", []string{"history", "queue", "eventlog", "internal/pgtest", "bench/webhook"}},
		{mod + "/config", []string{"internal/cli"}},
		{mod + "/internal/cli", []string{"."}},                                                                                     // the command line: only main calls it
		{mod + "/internal/testhosts", []string{"demo", "bench/webhook", "bench/deploy", "internal/deploytest", "internal/pgtest"}}, // and tests
		{mod + "/internal/deploytest", nil},
		{mod + "/internal/pgtest", []string{"bench/webhook"}}, // tests' and the benchmark's (StartServer)
		{mod + "/history/historytest", nil},                   // the history's conformance suite: tests' only
		{"github.com/chromedp/", nil},                         // the browser test's only: see TestBrowserOnlyInTests
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], mod), "/")
		if pkg == "" {
			pkg = "."
		}
		seen++
		for _, imp := range fields[1:] {
			for _, r := range rules {
				if !strings.HasPrefix(imp, r.lib) {
					continue
				}
				ok := false
				for _, a := range r.allowed {
					ok = ok || a == pkg
				}
				if !ok {
					t.Errorf("package %s imports %s; only %v may", pkg, imp, r.allowed)
				}
			}
			if pkg == "deploy" && strings.HasPrefix(imp, mod+"/") {
				t.Errorf("the domain package deploy imports %s: adapters depend on deploy, not the other way round", imp)
			}
		}
	}
	if seen < 5 {
		t.Fatalf("go list saw only %d packages:\n%s", seen, out)
	}
}

// TestBrowserOnlyInTests keeps chromedp (which drives a browser) in the
// end-to-end tests: no code that ships imports it.
func TestBrowserOnlyInTests(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	users := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, "github.com/chromedp/") {
				continue
			}
			if fields[0] != "github.com/pushdeploy/pushdeploy/e2e" {
				t.Errorf("tests of %s import %s; only the end-to-end browser test may", fields[0], imp)
			}
			users++
		}
	}
	if users == 0 {
		t.Error("no test imports chromedp: is the browser test gone?")
	}
}
