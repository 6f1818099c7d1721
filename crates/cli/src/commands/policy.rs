//! `cilium policy import|get|delete`: the agent's network policies (Cilium's verbs), and
//! `cilium apply -f` / `cilium delete -f`: objects in the cluster's kvstore.

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
    #[error("the agent refused the request")]
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

/// A file's text, or stdin's for `-`.
fn read_input(file: &Path) -> Result<String, PolicyCommandError> {
    let read_err = |source| PolicyCommandError::Read {
        path: file.display().to_string(),
        source,
    };
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_err)?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).map_err(read_err)
    }
}

/// `cilium apply -f` / `cilium delete -f`: stores or removes a file's objects in the cluster's
/// kvstore and prints the keys.
pub fn apply(
    target: &AgentTarget,
    file: &Path,
    remove: bool,
    format: OutputFormat,
) -> Result<(), PolicyCommandError> {
    let text = read_input(file)?;
    let client = target.client();
    let answer = if remove {
        client.resources_delete(&text)
    } else {
        client.resources_apply(&text)
    }
    .map_err(|source| PolicyCommandError::Import { source })?;
    match format {
        OutputFormat::Json => println!("{answer}"),
        OutputFormat::Text => {
            let verb = if remove { "deleted" } else { "applied" };
            for key in answer["keys"].as_array().into_iter().flatten() {
                println!("{} {verb}", key.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// Sends a policy file to the agent and prints the new revision.
pub fn import(
    target: &AgentTarget,
    file: &Path,
    format: OutputFormat,
) -> Result<(), PolicyCommandError> {
    let text = read_input(file)?;
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
