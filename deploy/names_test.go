package deploy

import "testing"

// TestNames keeps the typed names at the strings users see: the history,
// the API, revisions.log (action) and the progress (steps) show them.
func TestNames(t *testing.T) {
	tests := []struct {
		got  string
		want string
	}{
		{string(ActionDeploy), "deploy"}, {string(ActionRollback), "rollback"},
		{string(TriggerCLI), "cli"}, {string(TriggerAPI), "api"}, {string(TriggerWebhook), "webhook"},
		{string(StepConnect), "connect"}, {string(StepLock), "lock"}, {string(StepPrepare), "prepare"},
		{string(StepFetch), "fetch"}, {string(StepUpload), "upload"}, {string(StepCheckout), "checkout"},
		{string(StepVenv), "venv"}, {string(StepPip), "pip"}, {string(StepShared), "shared"},
		{string(StepBeforeSwitch), "before-switch"}, {string(StepSwitch), "switch"}, {string(StepRestart), "restart"},
		{string(StepHealth), "health"}, {string(StepAfterSwitch), "after-switch"}, {string(StepRetention), "retention"},
		{string(StepCleanup), "cleanup"}, {string(StepRevert), "revert"}, {string(StepRestartPrevious), "restart-previous"},
		{string(StepVerify), "verify"}, {string(StepResolve), "resolve"}, {string(StepDryRun), "dry-run"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	// The switch script writes the action into revisions.log.
	if switchDeploy != string(ActionDeploy) || switchRollback != string(ActionRollback) {
		t.Errorf("switch.sh actions %q, %q differ from the deployment actions", switchDeploy, switchRollback)
	}
}
