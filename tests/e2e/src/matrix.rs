//! Truth tables of network policy: for each port, which source reaches which target, as
//! expected or as observed, compared cell by cell and printed the way Kubernetes' network
//! policy e2e tests print theirs (`.` reaches, `X` is blocked, `-` not probed).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::probe::Port;

/// Position of one cell: row (source), column (target), port, as indexes into the table's
/// labels and ports.
pub type CellIndex = (usize, usize, usize);

/// A truth table over labelled sources × targets × ports; cells not set were not probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub ports: Vec<Port>,
    cells: BTreeMap<CellIndex, bool>,
}

/// One cell where the observation differs from the expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub from: String,
    pub to: String,
    pub port: Port,
    pub expected: bool,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (want, got) = if self.expected {
            ("allowed", "blocked")
        } else {
            ("blocked", "allowed")
        };
        write!(
            f,
            "{} -> {} {}: expected {want}, observed {got}",
            self.from, self.to, self.port
        )
    }
}

impl Table {
    pub fn new(rows: Vec<String>, cols: Vec<String>, ports: Vec<Port>) -> Table {
        Table {
            rows,
            cols,
            ports,
            cells: BTreeMap::new(),
        }
    }

    /// The same labels, with no cell set.
    pub fn empty_like(&self) -> Table {
        Table::new(self.rows.clone(), self.cols.clone(), self.ports.clone())
    }

    pub fn set(&mut self, at: CellIndex, reaches: bool) {
        self.cells.insert(at, reaches);
    }

    pub fn get(&self, at: CellIndex) -> Option<bool> {
        self.cells.get(&at).copied()
    }

    /// Cells of `observed` that differ from `self` (the expectation), in table order.
    pub fn mismatches(&self, observed: &Table) -> Vec<Mismatch> {
        self.cells
            .iter()
            .filter(|(at, want)| observed.get(**at) != Some(**want))
            .map(|(&(r, c, p), &expected)| Mismatch {
                from: self.rows[r].clone(),
                to: self.cols[c].clone(),
                port: self.ports[p],
                expected,
            })
            .collect()
    }

    /// Expected and observed side by side, one block per port; observed cells that differ
    /// from the expectation are marked with `*`.
    pub fn render_against(&self, observed: &Table) -> String {
        let row_width = self.rows.iter().map(String::len).max().unwrap_or(0);
        let widths: Vec<usize> = self.cols.iter().map(|c| c.len().max(2)).collect();
        let header: String = self
            .cols
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:>w$}"))
            .collect();
        let mut out = String::new();
        for (p, port) in self.ports.iter().enumerate() {
            let half = header.len();
            let _ = writeln!(
                out,
                "{port:<row_width$}{expected:<half$}    observed",
                expected = " expected"
            );
            let _ = writeln!(out, "{:row_width$}{header}   {header}", "");
            for (r, row) in self.rows.iter().enumerate() {
                let mut want_line = String::new();
                let mut got_line = String::new();
                for (c, w) in widths.iter().enumerate() {
                    let want = self.get((r, c, p));
                    let got = observed.get((r, c, p));
                    let _ = write!(want_line, " {:>w$}", mark(want));
                    let flagged = match (want, got) {
                        (Some(_), _) if want != got => format!("{}*", mark(got)),
                        _ => mark(got).to_string(),
                    };
                    let _ = write!(got_line, " {flagged:>w$}");
                }
                let _ = writeln!(out, "{row:<row_width$}{want_line}   {got_line}");
            }
        }
        out
    }
}

fn mark(cell: Option<bool>) -> &'static str {
    match cell {
        Some(true) => ".",
        Some(false) => "X",
        None => "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::new(
            vec!["x/a".into(), "world1".into()],
            vec!["x/a".into(), "x/b".into()],
            vec![Port::tcp(80)],
        )
    }

    #[test]
    fn mismatches_name_the_cell_and_both_verdicts() {
        let mut want = table();
        let mut got = want.empty_like();
        for at in [(0, 0, 0), (0, 1, 0), (1, 0, 0)] {
            want.set(at, true);
            got.set(at, true);
        }
        want.set((1, 1, 0), false);
        got.set((1, 1, 0), true);
        let diff = want.mismatches(&got);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert_eq!(
            diff[0].to_string(),
            "world1 -> x/b 80/tcp: expected blocked, observed allowed"
        );
        let text = want.render_against(&got);
        assert!(text.contains("80/tcp"), "{text}");
        let last = text.lines().last().unwrap();
        assert!(last.starts_with("world1"), "{text}");
        assert!(last.contains(".*"), "the differing cell is flagged: {text}");
    }

    #[test]
    fn a_cell_not_observed_is_a_mismatch() {
        let mut want = table();
        want.set((0, 1, 0), true);
        let got = want.empty_like();
        assert_eq!(want.mismatches(&got).len(), 1);
        assert!(want.render_against(&got).contains("-*"));
    }
}
