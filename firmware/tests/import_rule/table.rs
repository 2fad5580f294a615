//! The import table, read from the block between the `import-table begin` and `end` markers of
//! the crate doc in `lib.rs`: a chain of levels joined by `→` (several modules on one level are
//! joined by `/`), `X: used by all` lines, and `A may import B` exceptions.

use std::collections::{HashMap, HashSet};

#[derive(Debug, Default)]
pub struct Table {
    /// Module → its level, counted from the bottom (`hal` is 0).
    level: HashMap<String, usize>,
    /// Modules every module may import.
    everyone: HashSet<String>,
    /// (importer, imported) pairs allowed although the levels forbid them.
    allowed: HashSet<(String, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TableError {
    /// No `import-table begin` / `end` markers in the crate doc.
    NoTable,
    /// A module named twice, or an empty level.
    BadChain(String),
}

impl Table {
    /// Reads the table from the text of `lib.rs`.
    pub fn from_crate_doc(lib_rs: &str) -> Result<Table, TableError> {
        let doc: Vec<&str> = lib_rs
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("//!"))
            .map(str::trim)
            .collect();
        let begin = doc.iter().position(|l| l.contains("import-table begin"));
        let end = doc.iter().position(|l| l.contains("import-table end"));
        let (Some(begin), Some(end)) = (begin, end) else {
            return Err(TableError::NoTable);
        };
        let block = doc.get(begin + 1..end).ok_or(TableError::NoTable)?;
        let mut table = Table::default();
        let mut chain = String::new();
        for line in block.iter().filter(|l| !l.starts_with("```")) {
            if let Some(m) = line.strip_suffix(": used by all") {
                table.everyone.insert(m.trim().to_string());
            } else if let Some((a, b)) = line.split_once(" may import ") {
                table
                    .allowed
                    .insert((a.trim().to_string(), b.trim().to_string()));
            } else {
                chain.push(' ');
                chain.push_str(line);
            }
        }
        for (i, level) in chain.split('→').enumerate() {
            let modules: Vec<&str> = level.split('/').map(str::trim).collect();
            if modules.iter().any(|m| m.is_empty()) {
                return Err(TableError::BadChain(level.trim().to_string()));
            }
            for m in modules {
                if table.level.insert(m.to_string(), i).is_some() {
                    return Err(TableError::BadChain(m.to_string()));
                }
            }
        }
        Ok(table)
    }

    /// Whether `module` is placed in the table at all.
    pub fn knows(&self, module: &str) -> bool {
        self.level.contains_key(module) || self.everyone.contains(module)
    }

    /// Whether `importer` may import `imported` (both known).
    pub fn allows(&self, importer: &str, imported: &str) -> bool {
        if importer == imported || self.everyone.contains(imported) {
            return true;
        }
        if self
            .allowed
            .contains(&(importer.to_string(), imported.to_string()))
        {
            return true;
        }
        // A module used by all has no level: it may import only what all may use, or a loop
        // through it would be allowed.
        match (self.level.get(importer), self.level.get(imported)) {
            (Some(a), Some(b)) => b < a,
            _ => false,
        }
    }
}
