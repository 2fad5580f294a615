//! The import rule, checked: every `crate::` path in a top-level module of `firmware/src` must be
//! allowed by the table in `lib.rs`'s crate doc (the one source of truth; this test parses it).
//! Run by `make lint`. A failure prints one line per violation: `module -> imported (file:line)`.

mod scan;
mod table;

use std::path::{Path, PathBuf};

use table::{Table, TableError};

/// Every `.rs` file under `dir`, sorted so the report is stable.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src` belongs to; `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?;
    match name {
        "lib.rs" | "main.rs" => None,
        _ => Some(name.trim_end_matches(".rs").to_string()),
    }
}

/// The violations in `src`, as `module -> imported (file:line)`.
fn violations(table: &Table, src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = Vec::new();
    for file in files {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        let shown = file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(&file);
        if !table.knows(&module) {
            out.push(format!(
                "{module} is not in the import table ({})",
                shown.display()
            ));
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap_or_default();
        for (imported, line) in scan::crate_imports(&source) {
            if !table.allows(&module, &imported) {
                out.push(format!(
                    "{module} -> {imported} ({}:{line})",
                    shown.display()
                ));
            }
        }
    }
    out
}

#[test]
fn modules_import_only_what_the_table_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read src/lib.rs");
    let table = Table::from_crate_doc(&lib).expect("the import table in lib.rs's crate doc");
    let found = violations(&table, &src);
    assert!(
        found.is_empty(),
        "{} imports break the table in lib.rs's crate doc:\n{}",
        found.len(),
        found.join("\n")
    );
}

const SAMPLE_DOC: &str = "//! text\n\
//! <!-- import-table begin -->\n\
//! ```text\n\
//! hal → mail → smtp → config\n\
//!     → route / policy → queue\n\
//! log: used by all\n\
//! policy may import route\n\
//! ```\n\
//! <!-- import-table end -->\n";

#[test]
fn the_table_reads_levels_neighbours_and_exceptions() {
    let t = Table::from_crate_doc(SAMPLE_DOC).unwrap();
    assert!(t.allows("queue", "mail"));
    assert!(t.allows("smtp", "log"));
    assert!(!t.allows("mail", "smtp"), "upwards");
    assert!(!t.allows("route", "policy"), "neighbours");
    assert!(t.allows("policy", "route"), "the exception");
    assert!(!t.allows("log", "mail"), "log stays at the bottom");
    assert!(!t.knows("spool"));
    assert_eq!(
        Table::from_crate_doc("//! no table").unwrap_err(),
        TableError::NoTable
    );
    let twice = SAMPLE_DOC.replace("queue\n", "mail\n");
    assert!(matches!(
        Table::from_crate_doc(&twice),
        Err(TableError::BadChain(_))
    ));
}

#[test]
fn the_scan_sees_every_path_form_and_skips_comments_and_strings() {
    let src = "use crate::route::Transport;\n\
               use crate::{\n    config::MtaConfig,\n    mail::{Reply, QueueId},\n    self,\n};\n\
               // use crate::daemon::State;\n\
               /// See [`crate::admin`].\n\
               let s = \"crate::spool\"; let c = '\"'; let r = r#\"crate::bounce\"#;\n\
               fn f<'a>(x: &'a str) { crate::queue::run(x); my_crate::inbound::x(); }\n";
    let found = scan::crate_imports(src);
    assert_eq!(
        found,
        [
            ("route".to_string(), 1),
            ("config".to_string(), 3),
            ("mail".to_string(), 4),
            ("queue".to_string(), 10),
        ]
    );
}
