//! Splits a console line into words the way a shell would for simple cases: whitespace separates,
//! single and double quotes group, backslash escapes. No variables, globs or pipes.

use std::fmt;

/// A line that cannot be split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordsError {
    UnclosedQuote(char),
    TrailingBackslash,
}

impl fmt::Display for WordsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WordsError::UnclosedQuote(q) => write!(f, "unclosed {q} quote"),
            WordsError::TrailingBackslash => f.write_str("line ends in a backslash"),
        }
    }
}

impl std::error::Error for WordsError {}

/// Splits `line` into words.
pub fn split(line: &str) -> Result<Vec<String>, WordsError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(WordsError::UnclosedQuote(c)),
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some(e) => word.push(e),
                            None => return Err(WordsError::UnclosedQuote(c)),
                        },
                        Some(other) => word.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().ok_or(WordsError::TrailingBackslash)?);
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split("  ca  foo@example.com 'pass word'  ").unwrap(),
            ["ca", "foo@example.com", "pass word"]
        );
        assert_eq!(
            split(r#"ma a@b "x \"y\"" c\ d ''"#).unwrap(),
            ["ma", "a@b", "x \"y\"", "c d", ""]
        );
        assert_eq!(split("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn reports_broken_lines() {
        assert_eq!(split("sp a@b 'oops"), Err(WordsError::UnclosedQuote('\'')));
        assert_eq!(split("x \\"), Err(WordsError::TrailingBackslash));
    }
}
