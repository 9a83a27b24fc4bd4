-- The event log's tables, version 1. The same statements run on SQLite
-- and PostgreSQL; times are Unix milliseconds.

-- One row per deployment in the log: its app, the Seq of its last event
-- written, whether that event was its end, when it was last written (what
-- pruning goes by), and where it stands (JSON: the deployment and each
-- host's status and step, for the overview of the other deployers).
CREATE TABLE eventlog_deployments (
	deployment_id TEXT PRIMARY KEY,
	app           TEXT NOT NULL,
	last_seq      BIGINT NOT NULL,
	ended         INTEGER NOT NULL DEFAULT 0,
	updated_ms    BIGINT NOT NULL,
	state         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX eventlog_deployments_ended ON eventlog_deployments (ended, updated_ms);
CREATE INDEX eventlog_deployments_app ON eventlog_deployments (app, ended, updated_ms);

-- The events themselves, by deployment and Seq. dropped > 0 marks the
-- line that stands for that many forgotten output lines.
CREATE TABLE eventlog_events (
	deployment_id TEXT NOT NULL,
	seq           BIGINT NOT NULL,
	kind          TEXT NOT NULL,
	dropped       BIGINT NOT NULL DEFAULT 0,
	event         TEXT NOT NULL,
	PRIMARY KEY (deployment_id, seq)
);
