package deploy

// Action is what a deployment does. It is recorded in the history and in
// revisions.log on each host.
type Action string

const (
	ActionDeploy   Action = "deploy"   // ship a commit as a new release
	ActionRollback Action = "rollback" // point current back at a release on the hosts
)

// Trigger says who asked for a deployment.
type Trigger string

const (
	TriggerCLI     Trigger = "cli"     // pushdeploy deploy or rollback
	TriggerAPI     Trigger = "api"     // POST /api/deploy or /api/rollback
	TriggerWebhook Trigger = "webhook" // a forge's push
	// TriggerPoll: serve found a new tip on the branch itself
	// (DEPLOY_POLL_INTERVAL), as when a push's webhook was lost.
	TriggerPoll Trigger = "poll"
)

// Step names a step on a host, as its StepResult, the events, the progress
// and the history name it.
type Step string

// The steps of a deploy, in the order they run (see Deployer.deploySteps).
const (
	StepConnect      Step = "connect"
	StepLock         Step = "lock"
	StepPrepare      Step = "prepare"
	StepFetch        Step = "fetch"    // DEPLOY_FETCH=clone
	StepUpload       Step = "upload"   // DEPLOY_FETCH=push
	StepPipCopy      Step = "pip-copy" // the host's compiled copy of pip, before the lock
	StepCheckout     Step = "checkout"
	StepVenv         Step = "venv"
	StepPip          Step = "pip"
	StepShared       Step = "shared"
	StepBeforeSwitch Step = "before-switch" // the repository's hook of that name
	StepSwitch       Step = "switch"
	StepRestart      Step = "restart"
	StepHealth       Step = "health"
	StepAfterSwitch  Step = "after-switch" // the repository's hook of that name
	StepRetention    Step = "retention"
)

// The steps that undo, and rollback's own.
const (
	StepCleanup         Step = "cleanup"          // remove a half-built release
	StepRevert          Step = "revert"           // current back on the release before
	StepRestartPrevious Step = "restart-previous" // restart that release again
	StepVerify          Step = "verify"           // rollback: read the releases, pick the target
)

// The deployer's own steps, logged but not part of a host's result.
const (
	StepResolve Step = "resolve" // the branch or commit, on the deployer
	StepDryRun  Step = "dry-run" // one host's plan
)
