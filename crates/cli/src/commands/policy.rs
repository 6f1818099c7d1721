//! `cilium policy import|get|delete`: the agent's network policies (Cilium's verbs).

use std::io::Read;
use std::path::Path;

use cilium_api::ClientError;

use crate::cli::OutputFormat;
use crate::target::AgentTarget;

/// Errors of `cilium policy`.
#[derive(Debug, thiserror::Error)]
pub enum PolicyCommandError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent refused the policy")]
    Import {
        #[source]
        source: ClientError,
    },
    #[error("cannot talk to the agent")]
    Agent {
        #[source]
        source: ClientError,
    },
    #[error("`cilium policy delete` needs --all")]
    DeleteNeedsAll,
}

/// Sends a policy file to the agent and prints the new revision.
pub fn import(
    target: &AgentTarget,
    file: &Path,
    format: OutputFormat,
) -> Result<(), PolicyCommandError> {
    let read_err = |source| PolicyCommandError::Read {
        path: file.display().to_string(),
        source,
    };
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_err)?;
        text
    } else {
        std::fs::read_to_string(file).map_err(read_err)?
    };
    let answer = target
        .client()
        .policy_import(&text)
        .map_err(|source| PolicyCommandError::Import { source })?;
    print_revision(&answer, format);
    Ok(())
}

/// Prints the stored rules and the revision.
pub fn get(target: &AgentTarget, format: OutputFormat) -> Result<(), PolicyCommandError> {
    let answer = target
        .client()
        .policy_get()
        .map_err(|source| PolicyCommandError::Agent { source })?;
    match format {
        OutputFormat::Json => println!("{answer:#}"),
        OutputFormat::Text => {
            println!("{}", answer["policy"].as_str().unwrap_or("[]"));
            println!("Revision: {}", answer["revision"]);
        }
    }
    Ok(())
}

/// Deletes every policy.
pub fn delete(
    target: &AgentTarget,
    all: bool,
    format: OutputFormat,
) -> Result<(), PolicyCommandError> {
    if !all {
        return Err(PolicyCommandError::DeleteNeedsAll);
    }
    let answer = target
        .client()
        .policy_delete_all()
        .map_err(|source| PolicyCommandError::Agent { source })?;
    print_revision(&answer, format);
    Ok(())
}

fn print_revision(answer: &serde_json::Value, format: OutputFormat) {
    match format {
        OutputFormat::Json => println!("{answer}"),
        OutputFormat::Text => println!("Revision: {}", answer["revision"]),
    }
}
