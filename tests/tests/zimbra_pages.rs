//! Every `zmprov` line of the two Zimbra pages the product grew from ("Split Domain", KB 1293, and
//! "Zimbra MTA"), copied verbatim, run through `postern prov` as an admin pastes it (minus the
//! word `zmprov`). Each line is accepted and shows back as typed in `gacf`/`ga`/`gd`.
//!
//! What "as an admin pastes it" means, as the pages are written: the prompt (`$ `), a list
//! number (`1. `) or a lead-in word (`Enter `) before `zmprov` is not typed; `zmpov` is the
//! page's typo for `zmprov`; typographic quotes (‘’ “”) are the page's rendering of shell quotes;
//! a command the page wraps over several lines is one command; a shell pipe (`| grep WORD`) is
//! applied to the output; and a placeholder (`<attribute>`) is filled with what the page's text
//! says goes there.

use std::path::{Path, PathBuf};

use tests::host::postern;

/// Where a page's commands run: each section starts on a fresh flash set up as the page assumes.
struct Section {
    name: &'static str,
    /// Commands the page takes as done before its lines (not from the page).
    setup: &'static [&'static str],
    lines: &'static [PageLine],
}

struct PageLine {
    /// Copied from the page, character for character.
    verbatim: &'static str,
    /// Placeholder and what the page's text says to put there; several fills run the line once
    /// each.
    fill: &'static [&'static [(&'static str, &'static str)]],
    today: Today,
}

/// What the box does with the line today.
enum Today {
    /// Accepted; then each `(read command, line)` shows the value as typed (empty: the read
    /// must show none of the attribute's lines, for a clear).
    Accepted(&'static [(&'static str, &'static str)]),
}

const SPLIT_DOMAIN: &[Section] = &[
    Section {
        name: "Configuring Zimbra as the Primary System",
        // "You installed Zimbra on the host zimbra.example.com and created the domain example.com".
        setup: &["cd example.com"],
        lines: &[
            PageLine {
                verbatim: "$ zmprov ca bar@example.com <some_random_password>",
                fill: &[&[("<some_random_password>", "Gh7-rand0m-pass")]],
                today: Today::Accepted(&[("ga bar@example.com", "# name bar@example.com")]),
            },
            PageLine {
                verbatim: "$ zmprov ma bar@example.com zimbraMailTransport smtp:mail.example.com:25",
                fill: &[],
                today: Today::Accepted(&[(
                    "ga bar@example.com zimbraMailTransport",
                    "zimbraMailTransport: smtp:mail.example.com:25",
                )]),
            },
            PageLine {
                verbatim: "$ zmprov ma bar@example.com zimbraMailTransport lmtp:zimbra.example.com:7025",
                fill: &[],
                today: Today::Accepted(&[(
                    "ga bar@example.com zimbraMailTransport",
                    "zimbraMailTransport: lmtp:zimbra.example.com:7025",
                )]),
            },
        ],
    },
    Section {
        name: "ZCS 5.0.x/6.0.x As Primary",
        setup: &[],
        lines: &[
            PageLine {
                verbatim: "  1. zmpov cd example.com",
                fill: &[],
                today: Today::Accepted(&[("gd example.com", "# name example.com")]),
            },
            PageLine {
                verbatim: "  2. zmprov md example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:mail.example.com:25",
                fill: &[],
                today: Today::Accepted(&[
                    ("gd example.com", "zimbraMailCatchAllAddress: @example.com"),
                    (
                        "gd example.com",
                        "zimbraMailCatchAllForwardingAddress: @example.com",
                    ),
                    (
                        "gd example.com",
                        "zimbraMailTransport: smtp:mail.example.com:25",
                    ),
                ]),
            },
        ],
    },
    Section {
        name: "Configuring Zimbra as the Secondary System",
        setup: &["cd example.com"],
        lines: &[
            PageLine {
                verbatim: "$ zmprov md example.com zimbraMailCatchAllAddress @example.com",
                fill: &[],
                today: Today::Accepted(&[(
                    "gd example.com",
                    "zimbraMailCatchAllAddress: @example.com",
                )]),
            },
            PageLine {
                verbatim: "$ zmprov md example.com zimbraMailCatchAllForwardingAddress @example.com",
                fill: &[],
                today: Today::Accepted(&[(
                    "gd example.com",
                    "zimbraMailCatchAllForwardingAddress: @example.com",
                )]),
            },
            PageLine {
                verbatim: "$ zmprov md example.com zimbraMailTransport smtp:mail.example.com",
                fill: &[],
                today: Today::Accepted(&[(
                    "gd example.com",
                    "zimbraMailTransport: smtp:mail.example.com",
                )]),
            },
            PageLine {
                verbatim: "$ zmprov mcf zimbraMtaRelayHost mail.example.com",
                fill: &[],
                today: Today::Accepted(&[(
                    "gacf zimbraMtaRelayHost",
                    "zimbraMtaRelayHost: mail.example.com",
                )]),
            },
            PageLine {
                verbatim: "$ zmprov mcf zimbraMtaDnsLookupsEnabled FALSE",
                fill: &[],
                today: Today::Accepted(&[
                    (
                        "gacf zimbraMtaDnsLookupsEnabled",
                        "zimbraMtaDnsLookupsEnabled: FALSE",
                    ),
                    (
                        "gacf zimbraMtaSmtpDnsSupportLevel",
                        "zimbraMtaSmtpDnsSupportLevel: disabled",
                    ),
                ]),
            },
        ],
    },
    Section {
        name: "Avoiding Loops in Delivery",
        setup: &[
            "cd example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:mail.example.com",
        ],
        lines: &[
            PageLine {
                verbatim: "zmprov mcf +zimbraMtaRestriction \"check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf\"",
                fill: &[],
                today: Today::Accepted(&[(
                    "gacf zimbraMtaRestriction",
                    "zimbraMtaRestriction: check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf",
                )]),
            },
            PageLine {
                verbatim: "zmprov mcf +zimbraMtaRestriction reject",
                fill: &[],
                today: Today::Accepted(&[(
                    "gacf zimbraMtaRestriction",
                    "zimbraMtaRestriction: reject",
                )]),
            },
        ],
    },
];

const ZIMBRA_MTA: &[Section] = &[
    Section {
        name: "Anti-Spam Training Filters",
        setup: &[],
        lines: &[PageLine {
            verbatim: "zmprov mcf <attribute> ‘’",
            // "modify the global configuration attributes, zimbraSpamIsSpamAccount and
            // zimbraSpamIsNotSpamAccount, and remove the spam/ham account addresses".
            fill: &[
                &[("<attribute>", "zimbraSpamIsSpamAccount")],
                &[("<attribute>", "zimbraSpamIsNotSpamAccount")],
            ],
            today: Today::Accepted(&[("gacf", "")]),
        }],
    },
    Section {
        name: "Turning On or Off RBLs",
        setup: &[],
        lines: &[
            PageLine {
                verbatim: "Enter zmprov gacf | grep zimbraMtaRestriction, to see what RBLs are set.",
                fill: &[],
                today: Today::Accepted(&[]),
            },
            PageLine {
                verbatim: "zmprov mcf zimbraMtaRestriction [RBL type]",
                // The page's list: "reject_rbl_client cbl.abuseat.org", ...
                fill: &[&[("[RBL type]", "‘reject_rbl_client cbl.abuseat.org’")]],
                today: Today::Accepted(&[(
                    "gacf zimbraMtaRestriction",
                    "zimbraMtaRestriction: reject_rbl_client cbl.abuseat.org",
                )]),
            },
            PageLine {
                verbatim: "zmprov mcf zimbraMtaRestriction reject_invalid_hostname zimbraMtaRestriction reject_non_fqdn_hostname zimbraMtaRestriction reject_non_fqdn_sender zimbraMtaRestriction \n“reject_rbl_client dnsbl.njabl.org” zimbraMtaRestriction “reject_rbl_client cbl.abuseat.org”\nzimbraMtaRestriction “reject_rbl_client bl.spamcop.net” zimbraMtaRestriction\n“reject_rbl_client dnsbl.sorbs.net” zimbraMtaRestriction “reject_rbl_client sbl.spamhaus.org”\nzimbraMtaRestriction “reject_rbl_client relays.mail-abuse.org”",
                fill: &[],
                today: Today::Accepted(&[
                    (
                        "gacf zimbraMtaRestriction",
                        "zimbraMtaRestriction: reject_invalid_hostname",
                    ),
                    (
                        "gacf zimbraMtaRestriction",
                        "zimbraMtaRestriction: reject_non_fqdn_hostname",
                    ),
                    (
                        "gacf zimbraMtaRestriction",
                        "zimbraMtaRestriction: reject_rbl_client relays.mail-abuse.org",
                    ),
                ]),
            },
        ],
    },
];

/// The pages as stored beside the repository (the seeds the product grew from), when present:
/// each verbatim line must be found in them, so a typo here cannot pass for the page's text.
fn seed(name: &str) -> Option<String> {
    let dir = std::env::var_os("POSTERN_SEEDS")
        .map_or_else(|| PathBuf::from("/work/shared/seeds"), PathBuf::from);
    std::fs::read_to_string(dir.join(name)).ok()
}

/// The words an admin types for `verbatim`: from `zmprov` on, one command, up to a pipe; shell
/// quoting with the page's typographic quotes read as quotes. Returns the words after `zmprov`
/// and the pipe's `grep` word, if any.
fn as_typed(verbatim: &str, fill: &[(&str, &str)]) -> (Vec<String>, Option<String>) {
    let mut line = verbatim.replace('\n', " ");
    for (placeholder, value) in fill {
        line = line.replace(placeholder, value);
    }
    let start = ["zmprov ", "zmpov "]
        .iter()
        .filter_map(|w| line.find(w))
        .min()
        .unwrap_or_else(|| panic!("no zmprov in {verbatim:?}"));
    let line = &line[start..];
    let (command, pipe) = match line.split_once('|') {
        Some((c, p)) => (c, Some(p)),
        None => (line, None),
    };
    let grep = pipe.map(|p| {
        let words = shell_words(p);
        assert_eq!(words.first().map(String::as_str), Some("grep"), "{p}");
        words
            .get(1)
            .map(|w| w.trim_end_matches(',').to_string())
            .expect("grep word")
    });
    let mut words = shell_words(command);
    words.remove(0);
    (words, grep)
}

fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut close: Option<char> = None;
    for c in s.chars() {
        match (close, c) {
            (Some(end), c) if c == end => close = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => (close, any) = (Some(c), true),
            (None, '‘') => (close, any) = (Some('’'), true),
            (None, '“') => (close, any) = (Some('”'), true),
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    assert!(close.is_none(), "unclosed quote in {s:?}");
    if any {
        out.push(cur);
    }
    out
}

fn prov(flash: &Path, words: &[String]) -> std::process::Output {
    let flash = flash.to_string_lossy().to_string();
    let mut args = vec!["--flash", flash.as_str(), "--flash-size", "8M", "prov"];
    args.extend(words.iter().map(String::as_str));
    postern(&args)
}

fn prov_ok(flash: &Path, line: &str) -> String {
    let words = shell_words(line);
    let out = prov(flash, &words);
    assert!(
        out.status.success(),
        "prov {line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs one page's sections.
fn run_page(page: &str, sections: &[Section]) {
    let text = seed(page);
    for section in sections {
        let tmp = tempfile::tempdir().expect("temp dir");
        let flash = tmp.path().join("flash");
        for line in section.setup {
            prov_ok(&flash, line);
        }
        for line in section.lines {
            if let Some(text) = &text {
                assert!(
                    text.contains(line.verbatim),
                    "{page}: not on the page: {:?}",
                    line.verbatim
                );
            }
            let fills: Vec<&[(&str, &str)]> = match line.fill {
                [] => vec![&[]],
                fills => fills.to_vec(),
            };
            for fill in fills {
                let (words, grep) = as_typed(line.verbatim, fill);
                let out = prov(&flash, &words);
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                let what = format!("{page} / {} / {words:?}", section.name);
                match &line.today {
                    Today::Accepted(shows) => {
                        assert!(out.status.success(), "{what}: refused: {stderr}");
                        if let Some(word) = &grep {
                            // What the pipe leaves is what asking for the attribute shows.
                            let kept: String = stdout
                                .lines()
                                .filter(|l| l.contains(word.as_str()))
                                .map(|l| format!("{l}\n"))
                                .collect();
                            assert_eq!(kept, prov_ok(&flash, &format!("gacf {word}")), "{what}");
                        }
                        for (read, want) in *shows {
                            let shown = prov_ok(&flash, read);
                            if want.is_empty() {
                                let attr = fill.first().map_or("", |(_, a)| *a);
                                assert!(!shown.contains(attr), "{what}: {read} shows {attr}");
                            } else {
                                assert!(
                                    shown.lines().any(|l| l == *want),
                                    "{what}: {read} should show {want:?}, shows:\n{shown}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_zmprov_line_of_both_pages_works_as_written() {
    run_page("zimbra-split-domain.txt", SPLIT_DOMAIN);
    run_page("zimbra-mta.txt", ZIMBRA_MTA);
}

#[test]
fn page_lines_read_as_an_admin_types_them() {
    let (words, grep) = as_typed(
        "Enter zmprov gacf | grep zimbraMtaRestriction, to see what RBLs are set.",
        &[],
    );
    assert_eq!(words, ["gacf"]);
    assert_eq!(grep.as_deref(), Some("zimbraMtaRestriction"));
    let (words, _) = as_typed("zmprov mcf <attribute> ‘’", &[("<attribute>", "zimbraX")]);
    assert_eq!(words, ["mcf", "zimbraX", ""]);
    let (words, _) = as_typed(
        "zmprov mcf zimbraMtaRestriction \n“reject_rbl_client a.example” x",
        &[],
    );
    assert_eq!(
        words,
        [
            "mcf",
            "zimbraMtaRestriction",
            "reject_rbl_client a.example",
            "x"
        ]
    );
    assert_eq!(
        as_typed("  1. zmpov cd example.com", &[]).0,
        ["cd", "example.com"]
    );
}
