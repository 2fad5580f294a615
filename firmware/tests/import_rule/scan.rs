//! Finds the top-level modules a source file names through `crate::` paths, with their line
//! numbers: `use crate::route::X`, `crate::mail::Reply::new(..)`, and grouped
//! `use crate::{config::MtaConfig, mail::Transport}`. Comments and string literals are skipped,
//! so a doc link or a test string does not count as an import.

/// `(module, line)` for every `crate::` path in `source`.
pub fn crate_imports(source: &str) -> Vec<(String, usize)> {
    let (code, lines) = code_only(source);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::").map(|i| i + from) {
        from = at + "crate::".len();
        // `foo_crate::x` is another path, not this crate.
        if code[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let close = matching_brace(group);
            let mut offset = from + 1;
            for item in split_top_level(&group[..close]) {
                let lead = item.len() - item.trim_start().len();
                push_ident(&mut out, &code, &lines, offset + lead);
                offset += item.len() + 1;
            }
        } else {
            push_ident(&mut out, &code, &lines, from);
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn push_ident(out: &mut Vec<(String, usize)>, code: &str, lines: &[usize], at: usize) {
    let name: String = code[at..].chars().take_while(|c| is_ident(*c)).collect();
    if !name.is_empty() && name != "self" {
        out.push((name, lines[at]));
    }
}

/// Length up to the `}` that closes a group whose `{` was just passed.
fn matching_brace(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

/// The items of a group, split at commas outside nested braces.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items
}

/// `source` with comments and the contents of string and char literals blanked (newlines kept),
/// and the 1-based line of every byte.
fn code_only(source: &str) -> (String, Vec<usize>) {
    let b = source.as_bytes();
    let mut code = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let skip = match (b[i], b.get(i + 1).copied()) {
            (b'/', Some(b'/')) => until(b, i, |j| b[j] == b'\n'),
            (b'/', Some(b'*')) => until(b, i + 2, |j| b[j - 1] == b'*' && b[j] == b'/') + 1,
            (b'"', _) => string_end(b, i + 1, None),
            (b'r', Some(b'"' | b'#')) if i == 0 || !is_ident(b[i - 1] as char) => {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                match b.get(i + 1 + hashes) {
                    Some(b'"') => string_end(b, i + 2 + hashes, Some(hashes)),
                    _ => i + 1,
                }
            }
            (b'\'', Some(b'\\')) => until(b, i + 3, |j| b[j] == b'\'') + 1,
            // A char literal ('x', 'é'); anything else after a quote is a lifetime.
            (b'\'', Some(c)) => {
                let len = source[i + 1..].chars().next().map_or(1, char::len_utf8);
                if c != b'\'' && b.get(i + 1 + len) == Some(&b'\'') {
                    i + 2 + len
                } else {
                    i + 1
                }
            }
            _ => i + 1,
        };
        let skip = skip.min(b.len()).max(i + 1);
        if skip == i + 1 {
            code.push(b[i]);
        } else {
            code.extend(
                b[i..skip]
                    .iter()
                    .map(|c| if *c == b'\n' { b'\n' } else { b' ' }),
            );
        }
        i = skip;
    }
    let code = String::from_utf8_lossy(&code).into_owned();
    let mut lines = Vec::with_capacity(code.len() + 1);
    let mut line = 1;
    for c in code.bytes() {
        lines.push(line);
        if c == b'\n' {
            line += 1;
        }
    }
    lines.push(line);
    (code, lines)
}

/// The first index from `from` where `end` holds (or the end of the input).
fn until(b: &[u8], from: usize, end: impl Fn(usize) -> bool) -> usize {
    (from.max(1)..b.len()).find(|&j| end(j)).unwrap_or(b.len())
}

/// Past the closing quote of a string whose body starts at `from`; `raw` gives the number of
/// `#`s of a raw string (which has no escapes).
fn string_end(b: &[u8], from: usize, raw: Option<usize>) -> usize {
    let hashes = raw.unwrap_or(0);
    let mut j = from;
    while j < b.len() {
        match b[j] {
            b'\\' if raw.is_none() => j += 2,
            b'"' if b[j + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == b'#')
                .count()
                == hashes =>
            {
                return j + 1 + hashes;
            }
            _ => j += 1,
        }
    }
    b.len()
}
