//! The queue manager: incoming, active, deferred and hold; scheduling, backoff and lifetime.
