//! Mail log lines in the shape Postfix writes them.
