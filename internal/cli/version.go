package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version may be set at build time (-ldflags "-X
// github.com/pushdeploy/pushdeploy/internal/cli.version=v1.2.3"); unset,
// the module version from the build info is used: what `go install
// …@v1.2.3` records, or "(devel)" for a build from a checkout.
var version = ""

// versionString is the version line: the version, the VCS revision the
// binary was built from (when the build recorded one), Go and the platform.
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

func formatVersion(set string, bi *debug.BuildInfo) string {
	v, rev := buildVersion(set, bi)
	if rev != "" {
		rev = " " + rev
	}
	return fmt.Sprintf("pushdeploy %s%s %s %s/%s", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// buildVersion is the version (set, else the module's, else "dev") and the
// revision (12 hex digits, "+dirty" when the checkout was modified; empty
// when the build recorded none).
func buildVersion(set string, bi *debug.BuildInfo) (v, rev string) {
	v = set
	if bi != nil {
		if v == "" {
			v = bi.Main.Version
		}
		dirty := ""
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = s.Value[:12]
			}
			if s.Key == "vcs.modified" && s.Value == "true" {
				dirty = "+dirty"
			}
		}
		if rev != "" {
			rev += dirty
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	return v, rev
}
