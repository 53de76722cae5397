package redisstore

// epochSeen is how many markers the watch has read so far.
func (r *Store) epochSeen() int {
	if r.epoch == nil {
		return 0
	}
	return int(r.epoch.seen.Load())
}
