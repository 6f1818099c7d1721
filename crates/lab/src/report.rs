//! Rendering errors for people: one line with every cause, and lists of problems collected by
//! steps that keep going after a failure (teardown, rollback).

use std::error::Error;
use std::fmt;

/// `err` followed by each of its causes, joined with `: `.
pub fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Problems collected while carrying on; displays as an indented list, one per line.
#[derive(Debug)]
pub struct Problems<E>(pub Vec<E>);

impl<E> Problems<E> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<E: Error> fmt::Display for Problems<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0 {
            write!(f, "\n  - {}", chain(problem))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn chains_and_lists_render_every_cause() {
        let err = Outer {
            source: std::io::Error::other("inner"),
        };
        assert_eq!(chain(&err), "outer: inner");
        let list = Problems(vec![err]);
        assert_eq!(list.to_string(), "\n  - outer: inner");
    }
}
