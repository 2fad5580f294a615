//! Restrictions per stage, relay control, DNSBL, rate limits.
