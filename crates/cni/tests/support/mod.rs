//! Test support for the privileged CNI tests: throw-away namespaces, a fake agent, and a
//! way to run the real plugin binary as a runtime does.

pub mod fake_agent;
pub mod netns;
pub mod runtime;
