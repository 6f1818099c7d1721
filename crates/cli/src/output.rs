//! Writing results to stdout: aligned tables (three spaces between columns, like cilium-dbg's
//! tabwriter), pretty JSON, and line-at-a-time output that notices a closed pipe.

use std::io::{self, Write};

use serde::Serialize;

/// Spaces between table columns.
const COLUMN_GAP: usize = 3;

/// Errors writing output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write to stdout")]
    Write {
        #[source]
        source: io::Error,
    },
}

impl OutputError {
    /// The reader went away (`cilium monitor | head`): not worth an error message.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            OutputError::Write { source } => source.kind() == io::ErrorKind::BrokenPipe,
        }
    }
}

/// A text table whose columns are padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Renders every row on its own line; trailing blanks are trimmed.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                line.push_str(cell);
                let pad = width - cell.chars().count() + COLUMN_GAP;
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Pretty JSON with a final newline, as cilium-dbg prints it.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("CLI output types always serialize");
    text.push('\n');
    text
}

/// Writes text to stdout and flushes it, so streamed lines appear at once.
pub fn print(text: &str) -> Result<(), OutputError> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| OutputError::Write { source })
}

/// An error and its causes on one line, leaving out a cause whose text the message before it
/// already contains (some errors repeat their source in their own message).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chains_skip_repeated_causes() {
        #[derive(Debug, thiserror::Error)]
        enum Outer {
            #[error("cannot list endpoints")]
            List {
                #[source]
                source: Middle,
            },
        }
        #[derive(Debug, thiserror::Error)]
        enum Middle {
            #[error("connect failed: {source}")]
            Connect {
                #[source]
                source: std::io::Error,
            },
        }
        let err = Outer::List {
            source: Middle::Connect {
                source: std::io::Error::other("refused"),
            },
        };
        assert_eq!(
            error_chain(&err),
            "cannot list endpoints: connect failed: refused"
        );
    }

    #[test]
    fn columns_align_on_the_widest_cell() {
        let mut table = Table::new();
        table.row(["A", "LONG HEADER", "C"]);
        table.row(["12345", "x", ""]);
        table.row(["", "", "tail"]);
        assert_eq!(
            table.render(),
            "A       LONG HEADER   C\n12345   x\n                      tail\n"
        );
    }
}
