// Package overrides is the operator override set of the NS set: drains of
// members and forced answers of databases, each a record stamped with a
// hybrid logical clock, the node that took it, who asked, why and until
// when. The set is a last-writer-wins map, a state-based CRDT: Merge is
// commutative, associative and idempotent, so nodes that exchange their
// sets in any order, any number of times, end up with the same set.
// Removals (undrain, force --clear) are tombstones, collected after
// TombstoneTTL.
//
// Syncer exchanges the set with the other nodes through Peer, a transport
// the caller provides (the node uses its admin API client, so every
// exchange carries the admin token); Set.Records and Set.Restore are the
// form in which the node caches the set in its state file.
//
// It decides no answer (policy takes the overrides in force as plain
// input), validates no name against the config (the node does) and opens
// no listener.
package overrides
