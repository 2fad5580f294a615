//! Listeners and sessions: drives `smtp` over TCP/TLS, AUTH, limits and timeouts.
