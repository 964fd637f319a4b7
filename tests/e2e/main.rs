//! End-to-end tests: mail through a real Postfix, sealgate and a sink.
