//! What the console accepts as a typed line: printable text of a bounded length. A serial line
//! brings noise (escape sequences from arrow keys, a cat on the keyboard, a pasted novel); each is
//! refused with a message, and nothing typed can end the console.

use std::fmt;

/// Longer lines are refused: no answer or command needs more.
pub const MAX_LINE: usize = 1024;

/// Why a line was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    TooLong(usize),
    /// Control characters (other than tab), e.g. an arrow key's escape sequence.
    ControlCharacters,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineProblem::TooLong(n) => write!(
                f,
                "that line has {n} characters; at most {MAX_LINE} are taken"
            ),
            LineProblem::ControlCharacters => f.write_str(
                "that line has control characters (arrow keys or escape sequences?); type it again",
            ),
        }
    }
}

/// The line, trimmed, if it is one the console takes.
pub fn clean(raw: &str) -> Result<&str, LineProblem> {
    let line = raw.trim_end_matches(['\r', '\n']);
    let chars = line.chars().count();
    if chars > MAX_LINE {
        return Err(LineProblem::TooLong(chars));
    }
    // Backspace and DEL come through when the terminal's erase key does not match the tty's.
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(LineProblem::ControlCharacters);
    }
    Ok(line.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_refused_and_text_trimmed() {
        assert_eq!(clean("  mx1.example.com \r\n"), Ok("mx1.example.com"));
        assert_eq!(clean("\x1b[A"), Err(LineProblem::ControlCharacters));
        assert_eq!(clean("abc\x7f"), Err(LineProblem::ControlCharacters));
        assert_eq!(clean("a\0b"), Err(LineProblem::ControlCharacters));
        let long = "x".repeat(MAX_LINE + 1);
        assert_eq!(clean(&long), Err(LineProblem::TooLong(MAX_LINE + 1)));
        assert_eq!(clean(&"é".repeat(MAX_LINE)).map(str::len), Ok(2 * MAX_LINE));
    }
}
