//! Delivery status notifications (RFC 3464) and delay warnings.
