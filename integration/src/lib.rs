//! Harness for the real stack.
