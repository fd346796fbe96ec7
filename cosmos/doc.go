// Package cosmos is FlowStudio's persistence: users with their sealed
// refresh tokens, the Team cache, and usage counters. In Azure it runs on
// Cosmos DB (OpenCosmos); locally on an embedded single-file store
// (OpenEmbedded). Both sit behind the same typed Store and keep one contract,
// which one test suite (contract_test.go) checks against each.
//
// # Containers
//
//	users  partition /id      User; email index documents "email-<hash>"
//	cache  partition /userId  CacheItem: the Team cache; in SystemPartition,
//	                          records of no user (Stripe event ids); bug
//	                          reports in a partition per UTC day
//	usage  partition /userId  UsageCounter, per day and per minute, and the
//	                          daily count of bug reports
//
// Provision creates them with DefaultTimeToLive -1 (expiry on, but only
// items carrying a ttl expire). The server never creates storage.
//
// # Adding a kind of record
//
// A small record is a CacheItem with a new Kind: a constant, nothing else.
// Its Body is free JSON, its TTL its own; it lives in its user's partition or
// in SystemPartition. CreateCacheItem answers ErrConflict when the item
// exists, which is all an idempotency check (a Stripe event id) needs. A record
// that needs typed fields or queries of its own gets a type with a validate
// method and a few Store methods over an existing container, as User has.
//
// # Consistency
//
// A single write is atomic. ReplaceCacheItem and UpdateUser write only over
// the ETag they read (ErrPreconditionFailed otherwise); UpdateUser retries,
// so concurrent updates never lose a write. Counters are incremented
// atomically on the server. The email index is kept in step by UpdateUser,
// CreateUser and DeleteUser, adding before and removing after the user write,
// so it may name a stale user but never misses one; FindUsersByEmailHash
// checks every user it reads. A stored document that does not decode or
// validate is reported as *CorruptRecordError, never skipped.
//
// # Bounds
//
// Every backend call ends within five seconds or the caller's deadline,
// whichever is sooner, with one of the package's errors (ErrUnavailable,
// ErrThrottled, ...). On Cosmos DB a 429 is retried three times after the
// server's retry-after; the Cosmos retry policy handles 5xx and lost
// connections. The one exception to the deadline is the SDK's account lookup
// on a client's first call, which ignores cancellation; each of its four tries
// is bounded to three seconds (retryOptions).
package cosmos
