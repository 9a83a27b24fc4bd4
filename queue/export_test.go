package queue

// SchemaVersion is the queue's schema version once migrated: the number of
// migrations (for the tests of package queue_test).
func SchemaVersion() int { return len(migrations) }
