//! The services both running modes start: listeners, control socket, queue runner.
