//! Typed settings with defaults, validation and Zimbra attribute names.
