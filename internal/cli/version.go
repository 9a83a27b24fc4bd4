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
	v, rev := set, ""
	if bi != nil {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " " + s.Value[:12] + rev
			}
			if s.Key == "vcs.modified" && s.Value == "true" {
				rev += "+dirty"
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	return fmt.Sprintf("pushdeploy %s%s %s %s/%s", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
