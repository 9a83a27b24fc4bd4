package deploy

import _ "embed" // the remote scripts, from scripts/

// The shell scripts run on the hosts live in scripts/, one file each, where
// sh -n and shellcheck see them (TestScripts). Each runs as
// `sh -c SCRIPT sh ARGS…` (script): values reach it only as positional
// parameters ("$1", "$2"…), and Command.String quotes every one of them.
// No script is ever put together from parts or with string formatting.
// Each file's opening comment says what the script does and what its
// parameters are.

var (
	//go:embed scripts/lock.sh
	lockScript string
	//go:embed scripts/phase.sh
	phaseScript string
	//go:embed scripts/steps.sh
	stepsScript string
	//go:embed scripts/git.sh
	gitScript string
	//go:embed scripts/mirror.sh
	mirrorScript string
	//go:embed scripts/unpack.sh
	unpackScript string
	//go:embed scripts/venv.sh
	venvScript string
	//go:embed scripts/unpack_pip.py
	unpackPipProgram string
	//go:embed scripts/pipcopy.sh
	pipCopyScript string
	//go:embed scripts/pip.sh
	pipScript string
	//go:embed scripts/shared.sh
	sharedScript string
	//go:embed scripts/hook.sh
	hookScript string
	//go:embed scripts/switch.sh
	switchScript string
	//go:embed scripts/remove.sh
	removeScript string
	//go:embed scripts/retention.sh
	retentionScript string
	//go:embed scripts/plan.sh
	planScript string
	//go:embed scripts/rollback.sh
	rollbackScript string
	//go:embed scripts/releases.sh
	releasesScript string
	//go:embed scripts/check.sh
	checkScript string
	//go:embed scripts/python_check.sh
	pythonCheckScript string
)

// activeFile, in the root folder, is held shared by every command a
// deployment runs on the host after its prepare step (Command.Hold);
// lock.sh waits for it.
const activeFile = ".pushdeploy.active"

// The actions of switch.sh: why current moves.
const (
	switchDeploy   = "deploy"   // to the new release, marked complete first
	switchRollback = "rollback" // to an existing complete release
	switchRevert   = "revert"   // back, after the new release failed to start; the new one is deleted
)

// script is the argument list that runs the script s with args as its
// positional parameters.
func script(s string, args ...string) []string {
	return append([]string{"sh", "-c", s, "sh"}, args...)
}
