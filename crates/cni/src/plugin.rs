//! One plugin invocation: read the command, validate the configuration and environment,
//! run the command, and turn the outcome into what goes to stdout.

use cilium_api::AgentClient;
use serde_json::Value;
use tracing::info_span;

use crate::agent;
use crate::cmd::{add, check, del, gc, status, version};
use crate::config::{self, NetConf};
use crate::env::{self, Command, ContainerEnv, Lookup};
use crate::error::{ErrorReply, Failure};
use crate::version::CniVersion;

/// Runs the command named by `CNI_COMMAND` with the configuration in `stdin`. `Ok(Some)`
/// is the JSON to print, `Ok(None)` means success with no output, `Err` is the error JSON
/// to print before exiting with status 1.
pub fn run(stdin: &[u8], lookup: Lookup<'_>) -> Result<Option<String>, ErrorReply> {
    let reply_version = config::peek(stdin).version.unwrap_or(CniVersion::LATEST);
    match execute(stdin, lookup) {
        Ok(output) => Ok(output.map(|value| {
            serde_json::to_string_pretty(&value).expect("JSON values always serialize")
        })),
        Err(failure) => Err(ErrorReply::new(reply_version, failure.as_ref())),
    }
}

fn execute(stdin: &[u8], lookup: Lookup<'_>) -> Result<Option<Value>, Failure> {
    let command = env::command(lookup)?;
    let span = info_span!("cni", %command, container_id = tracing::field::Empty);
    let _entered = span.enter();
    let configured = || -> Result<(NetConf, AgentClient), Failure> {
        let conf = NetConf::parse(stdin)?;
        conf.cni_version.check_allows(command)?;
        let agent = agent::client(&conf, lookup);
        Ok((conf, agent))
    };
    let container = || -> Result<ContainerEnv, Failure> {
        let container = ContainerEnv::from_lookup(lookup)?;
        span.record("container_id", container.container_id.as_str());
        Ok(container)
    };
    match command {
        Command::Version => Ok(Some(version::reply())),
        Command::Add => {
            let (conf, agent) = configured()?;
            add::run(&conf, &container()?, &agent).map(Some)
        }
        Command::Del => {
            let (_, agent) = configured()?;
            del::run(&container()?, &agent)?;
            Ok(None)
        }
        Command::Check => {
            let (conf, agent) = configured()?;
            check::run(conf.prev_result.as_ref(), &container()?, &agent)?;
            Ok(None)
        }
        Command::Status => {
            let (_, agent) = configured()?;
            status::run(&agent)?;
            Ok(None)
        }
        Command::Gc => {
            let (conf, agent) = configured()?;
            gc::run(conf.valid_attachments.as_deref(), &agent)?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn invoke(stdin: &str, pairs: &[(&str, &str)]) -> Result<Option<String>, ErrorReply> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        run(stdin.as_bytes(), &move |key| map.get(key).cloned())
    }

    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"n","type":"cilium-cni","agent-socket":"/nonexistent/agent.sock"}"#;

    #[test]
    fn version_needs_no_valid_config() {
        let out = invoke("", &[("CNI_COMMAND", "VERSION")]).expect("VERSION succeeds");
        let json: Value = serde_json::from_str(&out.expect("VERSION prints")).unwrap();
        assert_eq!(json["cniVersion"], "1.1.0");
    }

    #[test]
    fn config_errors_come_before_environment_errors() {
        let err = invoke("{not json", &[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!((err.code, err.cni_version.as_str()), (6, "1.1.0"));
        assert!(
            err.msg.starts_with("failed to decode content"),
            "{}",
            err.msg
        );
        let err = invoke(CONF, &[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!((err.code, err.cni_version.as_str()), (4, "1.0.0"));
        assert!(err.msg.contains("CNI_CONTAINERID"), "{}", err.msg);
    }

    #[test]
    fn add_without_netns_is_an_environment_error() {
        let err = invoke(
            CONF,
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
            ],
        )
        .unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.msg.contains("CNI_NETNS"), "{}", err.msg);
    }

    #[test]
    fn an_unreachable_agent_makes_status_unavailable() {
        let status_conf = CONF.replace("1.0.0", "1.1.0");
        let err = invoke(&status_conf, &[("CNI_COMMAND", "STATUS")]).unwrap_err();
        assert_eq!(err.code, 50, "{err:?}");
        assert!(err.msg.starts_with("plugin not available"), "{}", err.msg);
    }

    #[test]
    fn commands_newer_than_the_config_are_incompatible() {
        let err = invoke(CONF, &[("CNI_COMMAND", "GC")]).unwrap_err();
        assert_eq!(err.code, 1);
        let old = CONF.replace("1.0.0", "0.3.1");
        let err = invoke(
            &old,
            &[
                ("CNI_COMMAND", "CHECK"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
            ],
        )
        .unwrap_err();
        assert_eq!((err.code, err.cni_version.as_str()), (1, "0.3.1"));
    }

    #[test]
    fn gc_without_attachments_is_invalid_config() {
        let conf = CONF.replace("1.0.0", "1.1.0");
        let err = invoke(&conf, &[("CNI_COMMAND", "GC")]).unwrap_err();
        assert_eq!(err.code, 7, "{err:?}");
    }

    #[test]
    fn check_without_prev_result_is_invalid_config() {
        let err = invoke(
            CONF,
            &[
                ("CNI_COMMAND", "CHECK"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", "/run/netns/none"),
            ],
        )
        .unwrap_err();
        assert_eq!(err.code, 7, "{err:?}");
    }
}
