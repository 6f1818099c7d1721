//! Kubernetes label selectors (`app=web,tier!=db`, `env in (a,b)`, `!canary`, `version>2`)
//! matched against a flow endpoint's labels.
//!
//! Flow labels carry their source (`k8s:app=web`, `reserved:world`). A selector key with a
//! source (`k8s:app`) must match it; a key without one (`app`) matches the key from any
//! source, as `hubble observe --label app=web` does.

use std::collections::BTreeSet;

/// A label selector that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {problem}")]
pub struct SelectorError {
    /// The selector as given.
    pub selector: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    /// `None` matches any source.
    source: Option<String>,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(Key),
    NotExists(Key),
    In(Key, BTreeSet<String>),
    NotIn(Key, BTreeSet<String>),
    GreaterThan(Key, i64),
    LessThan(Key, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Not,
    Equals,
    NotEquals,
    Greater,
    Less,
    Open,
    Close,
    Comma,
}

impl LabelSelector {
    /// Parses Kubernetes selector syntax. The empty selector matches everything.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let fail = |problem: &str| SelectorError {
            selector: selector.to_string(),
            problem: problem.to_string(),
        };
        let tokens = tokenize(selector).map_err(|problem| fail(&problem))?;
        let mut parser = Parser { tokens, at: 0 };
        let mut requirements = Vec::new();
        if parser.peek().is_none() {
            return Ok(Self { requirements });
        }
        loop {
            requirements.push(parser.requirement().map_err(|problem| fail(&problem))?);
            match parser.next() {
                None => break,
                Some(Token::Comma) => continue,
                Some(other) => return Err(fail(&format!("unexpected {other:?}"))),
            }
        }
        Ok(Self { requirements })
    }

    /// Whether labels (`source:key=value` or `key=value`, value optional) satisfy every
    /// requirement.
    pub fn matches<S: AsRef<str>>(&self, labels: &[S]) -> bool {
        let parsed: Vec<(&str, &str, &str)> =
            labels.iter().map(|l| split_label(l.as_ref())).collect();
        self.requirements.iter().all(|r| r.holds(&parsed))
    }
}

/// `source:key=value` → (source, key, value); a missing source is `""`, a missing value too.
fn split_label(label: &str) -> (&str, &str, &str) {
    let (key, value) = label.split_once('=').unwrap_or((label, ""));
    match key.split_once(':') {
        Some((source, name)) => (source, name, value),
        None => ("", key, value),
    }
}

impl Key {
    fn parse(word: &str) -> Key {
        match word.split_once(':') {
            Some(("any", name)) => Key {
                source: None,
                name: name.to_string(),
            },
            Some((source, name)) => Key {
                source: Some(source.to_string()),
                name: name.to_string(),
            },
            None => Key {
                source: None,
                name: word.to_string(),
            },
        }
    }

    /// Values of the labels with this key.
    fn values<'a>(
        &'a self,
        labels: &'a [(&'a str, &'a str, &'a str)],
    ) -> impl Iterator<Item = &'a str> {
        labels.iter().filter_map(move |(source, name, value)| {
            let source_ok = self.source.as_deref().is_none_or(|s| s == *source);
            (source_ok && *name == self.name).then_some(*value)
        })
    }
}

impl Requirement {
    fn holds(&self, labels: &[(&str, &str, &str)]) -> bool {
        match self {
            Requirement::Exists(key) => key.values(labels).next().is_some(),
            Requirement::NotExists(key) => key.values(labels).next().is_none(),
            Requirement::In(key, set) => key.values(labels).any(|v| set.contains(v)),
            Requirement::NotIn(key, set) => !key.values(labels).any(|v| set.contains(v)),
            Requirement::GreaterThan(key, bound) => key
                .values(labels)
                .any(|v| v.parse::<i64>().is_ok_and(|n| n > *bound)),
            Requirement::LessThan(key, bound) => key
                .values(labels)
                .any(|v| v.parse::<i64>().is_ok_and(|n| n < *bound)),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':')
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::NotEquals);
                } else {
                    tokens.push(Token::Not);
                }
            }
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                }
                tokens.push(Token::Equals);
            }
            '>' | '<' | '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '>' => Token::Greater,
                    '<' => Token::Less,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            c if is_word_char(c) => {
                let mut word = String::new();
                while let Some(&c) = chars.peek().filter(|c| is_word_char(**c)) {
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(word)) => Ok(word),
            other => Err(format!("expected {what}, found {other:?}")),
        }
    }

    /// A value after `=` or `!=`: a word, or nothing (the empty value).
    fn value(&mut self) -> Result<String, String> {
        match self.peek() {
            None | Some(Token::Comma) => Ok(String::new()),
            _ => self.word("a value"),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Not) {
            self.next();
            return Ok(Requirement::NotExists(Key::parse(&self.word("a key")?)));
        }
        let key = Key::parse(&self.word("a key")?);
        match self.peek().cloned() {
            None | Some(Token::Comma) => Ok(Requirement::Exists(key)),
            Some(Token::Equals) => {
                self.next();
                Ok(Requirement::In(key, BTreeSet::from([self.value()?])))
            }
            Some(Token::NotEquals) => {
                self.next();
                Ok(Requirement::NotIn(key, BTreeSet::from([self.value()?])))
            }
            Some(Token::Greater) | Some(Token::Less) => {
                let greater = self.next() == Some(Token::Greater);
                let word = self.word("a number")?;
                let bound = word
                    .parse::<i64>()
                    .map_err(|_| format!("{word:?} is not an integer"))?;
                Ok(if greater {
                    Requirement::GreaterThan(key, bound)
                } else {
                    Requirement::LessThan(key, bound)
                })
            }
            Some(Token::Word(op)) if op == "in" || op == "notin" => {
                self.next();
                let set = self.set()?;
                Ok(if op == "in" {
                    Requirement::In(key, set)
                } else {
                    Requirement::NotIn(key, set)
                })
            }
            Some(other) => Err(format!("unexpected {other:?} after a key")),
        }
    }

    /// `( value, value, ... )`
    fn set(&mut self) -> Result<BTreeSet<String>, String> {
        if self.next() != Some(Token::Open) {
            return Err("expected '(' after in/notin".into());
        }
        let mut set = BTreeSet::new();
        loop {
            match self.next() {
                Some(Token::Word(value)) => {
                    set.insert(value);
                }
                Some(Token::Close) if set.is_empty() => {
                    return Err("empty value set".into());
                }
                other => return Err(format!("expected a value, found {other:?}")),
            }
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::Close) => return Ok(set),
                other => return Err(format!("expected ',' or ')', found {other:?}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XWING: [&str; 3] = [
        "k8s:class=xwing",
        "k8s:io.kubernetes.pod.namespace=default",
        "k8s:org=alliance",
    ];

    fn matches(selector: &str, labels: &[&str]) -> bool {
        LabelSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(labels)
    }

    #[test]
    fn equality_with_and_without_source() {
        assert!(matches("org=alliance", &XWING));
        assert!(matches("k8s:org=alliance", &XWING));
        assert!(matches("org==alliance", &XWING));
        assert!(!matches("org=empire", &XWING));
        assert!(!matches("reserved:org=alliance", &XWING));
        assert!(matches("any:class=xwing", &XWING));
        assert!(matches("io.kubernetes.pod.namespace=default", &XWING));
    }

    #[test]
    fn inequality_and_sets() {
        assert!(matches("org!=empire", &XWING));
        assert!(!matches("org!=alliance", &XWING));
        assert!(matches("tier!=db", &XWING), "absent keys satisfy !=");
        assert!(matches("org in (empire, alliance)", &XWING));
        assert!(!matches("org in (empire)", &XWING));
        assert!(matches("class notin (tiefighter,deathstar)", &XWING));
        assert!(!matches("class notin (xwing)", &XWING));
    }

    #[test]
    fn existence_numbers_and_conjunction() {
        assert!(matches("org", &XWING));
        assert!(!matches("!org", &XWING));
        assert!(matches("!canary", &XWING));
        assert!(matches("reserved:world", &["reserved:world"]));
        assert!(!matches("reserved:host", &["reserved:world"]));
        assert!(matches("version>2", &["k8s:version=3"]));
        assert!(!matches("version<2", &["k8s:version=3"]));
        assert!(matches("org=alliance,class=xwing", &XWING));
        assert!(!matches("org=alliance,class=tiefighter", &XWING));
        assert!(matches("", &XWING), "the empty selector selects everything");
        assert!(
            matches("app=", &["k8s:app"]),
            "empty values compare as empty"
        );
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_selector_named() {
        for bad in [
            "org in empire",
            "org in ()",
            "=x",
            "org=a b",
            "ver>x",
            "org in (a",
            "a,&",
        ] {
            let err = LabelSelector::parse(bad).expect_err(bad);
            assert_eq!(err.selector, bad);
            assert!(err.to_string().contains("invalid label selector"), "{err}");
        }
    }
}
