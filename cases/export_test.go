package cases

// SetNoSync makes b skip fsync: benchmarks fill 100,000 cases in seconds.
func SetNoSync(b *Bolt, v bool) { b.db.NoSync = v }
