package config

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite ../deploy.env.example from Usage")

const exampleFile = "../deploy.env.example"

// TestExampleFile keeps deploy.env.example in step with Config: the file is
// the output of Usage.
func TestExampleFile(t *testing.T) {
	var b bytes.Buffer
	if err := Usage(&b); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(exampleFile, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.String(), string(got)); diff != "" {
		t.Errorf("deploy.env.example is out of date (-Usage +file); run go test ./config -run TestExampleFile -update:\n%s", diff)
	}
}

// TestExampleFileVariables checks what the file says, whatever produced it:
// every variable is there once, every DEPLOY_ name in it is a variable, the
// only lines it sets are the required variables (empty, to be filled in),
// and every other line is commented out with the variable's default.
func TestExampleFileVariables(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`DEPLOY_[A-Z0-9_]+`).FindAllString(string(data), -1) {
		if _, ok := lookupVariable(name); !ok {
			t.Errorf("deploy.env.example names %s, which is not a variable", name)
		}
	}
	commented := make(map[string][]string)
	for _, line := range strings.Split(string(data), "\n") {
		if m := regexp.MustCompile(`^# (DEPLOY_[A-Z0-9_]+)=(.*)$`).FindStringSubmatch(line); m != nil {
			commented[m[1]] = append(commented[m[1]], m[2])
		}
	}
	entries, bad := parseEnvFile(data)
	if bad != nil {
		t.Fatal(bad.problem(exampleFile))
	}
	set := make(map[string][]string)
	for _, e := range entries {
		set[e.key] = append(set[e.key], e.value)
	}
	for _, v := range variables {
		switch {
		case len(set[v.key])+len(commented[v.key]) != 1:
			t.Errorf("deploy.env.example has %d lines for %s, want 1", len(set[v.key])+len(commented[v.key]), v.key)
		case mustSet(v) && (len(set[v.key]) != 1 || set[v.key][0] != ""):
			t.Errorf("deploy.env.example: %s is required: want it uncommented and empty, got %q", v.key, set[v.key])
		case !mustSet(v) && (len(commented[v.key]) != 1 || commented[v.key][0] != v.def):
			t.Errorf("deploy.env.example: want # %s=%s (commented out, its default), got %q", v.key, v.def, commented[v.key])
		}
	}
	for key := range set {
		if _, ok := lookupVariable(key); !ok {
			t.Errorf("deploy.env.example sets %s, which is not a variable", key)
		}
	}
}

// TestStarterGroups: every variable has its place in a group of the
// starter file, so that none lands in "Other".
func TestStarterGroups(t *testing.T) {
	in := map[string]string{}
	for _, g := range groups {
		for _, k := range g.keys {
			if prev, dup := in[k]; dup {
				t.Errorf("%s is in the groups %q and %q", k, prev, g.title)
			}
			in[k] = g.title
		}
	}
	for _, v := range variables {
		if _, ok := in[v.alt]; !ok {
			t.Errorf("%s is in no group of config/starter.go: add it to the group it belongs to", v.key)
		}
	}
}

// TestDocsVariables checks that docs/configuration.md describes every variable.
func TestDocsVariables(t *testing.T) {
	data, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range variables {
		if !strings.Contains(string(data), "| `"+v.key+"` |") {
			t.Errorf("docs/configuration.md has no table row for %s", v.key)
		}
	}
	for _, name := range regexp.MustCompile(`DEPLOY_[A-Z0-9_]+`).FindAllString(string(data), -1) {
		if _, ok := lookupVariable(name); !ok && name != typoBranch && name != typoTimeout {
			t.Errorf("docs/configuration.md names %s, which is not a variable", name)
		}
	}
}
