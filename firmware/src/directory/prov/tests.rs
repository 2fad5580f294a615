use super::*;

/// Splits a command line as a shell would for simple cases: spaces, and '...' quoting.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn run(dir: &mut Directory, line: &str) -> Result<String, ProvError> {
    let out = execute(dir, &words(line))?;
    if let Some(next) = out.directory {
        *dir = next;
    }
    Ok(out.output)
}

fn ok(dir: &mut Directory, line: &str) -> String {
    run(dir, line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn base() -> Directory {
    let mut d = Directory::default();
    ok(&mut d, "cd example.com");
    ok(&mut d, "ca foo@example.com secret");
    d
}

#[test]
fn create_get_modify_account_like_zmprov() {
    let mut d = base();
    assert_eq!(
        ok(
            &mut d,
            "createAccount Bar@Example.com pw zimbraMailTransport smtp:mail.example.com:25"
        ),
        "bar@example.com\n"
    );
    let ga = ok(&mut d, "ga bar@example.com");
    assert!(ga.starts_with("# name bar@example.com\n"), "{ga}");
    assert!(
        ga.contains("zimbraMailTransport: smtp:mail.example.com:25\n"),
        "{ga}"
    );
    assert!(ga.contains("zimbraMailStatus: enabled\n"), "{ga}");
    assert!(ga.contains("userPassword: "), "{ga}");
    ok(
        &mut d,
        "ma bar@example.com zimbraMailTransport lmtp:zimbra.example.com:7025",
    );
    assert_eq!(
        ok(&mut d, "ga bar@example.com zimbraMailTransport"),
        "# name bar@example.com\nzimbraMailTransport: lmtp:zimbra.example.com:7025\n"
    );
    assert_eq!(
        ok(&mut d, "gaa example.com"),
        "bar@example.com\nfoo@example.com\n"
    );
    assert_eq!(ok(&mut d, "gaa"), "bar@example.com\nfoo@example.com\n");
    ok(&mut d, "da bar@example.com");
    assert_eq!(ok(&mut d, "gaa"), "foo@example.com\n");
}

#[test]
fn multi_valued_attributes_add_and_remove_one_value() {
    let mut d = base();
    ok(
        &mut d,
        "ma foo@example.com zimbraMailForwardingAddress a@x.org zimbraMailForwardingAddress b@x.org",
    );
    ok(
        &mut d,
        "ma foo@example.com +zimbraMailForwardingAddress c@x.org",
    );
    ok(
        &mut d,
        "ma foo@example.com -zimbraMailForwardingAddress a@x.org",
    );
    assert_eq!(
        ok(&mut d, "ga foo@example.com zimbraMailForwardingAddress"),
        "# name foo@example.com\nzimbraMailForwardingAddress: b@x.org\nzimbraMailForwardingAddress: c@x.org\n"
    );
    ok(&mut d, "ma foo@example.com zimbraMailForwardingAddress ''");
    assert_eq!(
        ok(&mut d, "ga foo@example.com zimbraMailForwardingAddress"),
        "# name foo@example.com\n"
    );
    let e = run(
        &mut d,
        "ma foo@example.com +zimbraMailTransport smtp:a.example +zimbraMailTransport smtp:b.example",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("zimbraMailTransport is single-valued"),
        "{e}"
    );
}

#[test]
fn aliases_and_passwords() {
    let mut d = base();
    ok(&mut d, "aaa foo@example.com f@example.com");
    ok(&mut d, "addAccountAlias foo@example.com boss@example.com");
    let ga = ok(&mut d, "ga foo@example.com zimbraMailAlias");
    assert_eq!(
        ga,
        "# name foo@example.com\nzimbraMailAlias: boss@example.com\nzimbraMailAlias: f@example.com\n"
    );
    assert!(ok(&mut d, "ga BOSS@example.com").starts_with("# name foo@example.com\n"));
    ok(&mut d, "ma boss@example.com zimbraMailStatus disabled");
    assert_eq!(
        d.account("foo@example.com").unwrap().status(),
        crate::directory::MailStatus::Disabled
    );
    ok(&mut d, "raa foo@example.com f@example.com");
    assert!(!ok(&mut d, "ga foo@example.com").contains("f@example.com\n"));
    let before = d
        .account("foo@example.com")
        .unwrap()
        .password()
        .map(|p| p.to_string());
    ok(&mut d, "sp foo@example.com n3w");
    let after = d
        .account("foo@example.com")
        .unwrap()
        .password()
        .map(|p| p.to_string());
    assert_ne!(before, after);
    assert!(run(&mut d, "sp foo@example.com ''").is_err());
}

#[test]
fn domains_and_config() {
    let mut d = base();
    ok(
        &mut d,
        "md example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:mail.example.com:25",
    );
    let gd = ok(&mut d, "gd example.com");
    assert!(gd.starts_with("# name example.com\n"), "{gd}");
    assert!(
        gd.contains("zimbraMailCatchAllForwardingAddress: @example.com\n"),
        "{gd}"
    );
    ok(&mut d, "createDomain example.org");
    assert_eq!(ok(&mut d, "gad"), "example.com\nexample.org\n");
    ok(&mut d, "dd example.org");
    assert_eq!(ok(&mut d, "gad"), "example.com\n");
    let e = run(&mut d, "dd example.com").unwrap_err();
    assert!(e.to_string().contains("DOMAIN_NOT_EMPTY"), "{e}");

    ok(
        &mut d,
        "mcf zimbraMtaRelayHost [smtp.isp.example]:587 zimbraMtaDnsLookupsEnabled FALSE",
    );
    ok(&mut d, "mcf zimbraMtaMyNetworks '127.0.0.0/8 10.0.0.0/8'");
    ok(
        &mut d,
        "mcf zimbraMtaMinimalBackoffTime 2h zimbraMtaMaximalBackoffTime 4h",
    );
    let gacf = ok(&mut d, "gacf");
    for line in [
        "zimbraMtaRelayHost: [smtp.isp.example]:587\n",
        "zimbraMtaDnsLookupsEnabled: FALSE\n",
        "zimbraMtaMyNetworks: 127.0.0.0/8 10.0.0.0/8\n",
        "zimbraMtaMinimalBackoffTime: 2h\n",
        "zimbraMtaMaximalBackoffTime: 4h\n",
        "zimbraMtaMaximalQueueLifetime: 5d\n",
    ] {
        assert!(gacf.contains(line), "{line} missing from\n{gacf}");
    }
    assert_eq!(ok(&mut d, "gacf hopcount_limit"), "hopcount_limit: 50\n");
}

#[test]
fn errors_name_what_is_wrong_and_change_nothing() {
    let mut d = base();
    let snapshot = d.encode();
    for (line, needle) in [
        (
            "ma foo@example.com zimbraMailTransport uucp:host",
            "zimbraMailTransport",
        ),
        ("ma foo@example.com zimbraMailQuota 10", "zimbraMailQuota"),
        (
            "ma foo@example.com zimbraMailStatus active",
            "zimbraMailStatus",
        ),
        ("ma foo@example.com zimbraMailTransport", "usage: ma"),
        (
            "ma nobody@example.com zimbraMailStatus disabled",
            "NO_SUCH_ACCOUNT",
        ),
        ("ca foo@example.com pw", "ACCOUNT_EXISTS"),
        ("ca x@example.net pw", "NO_SUCH_DOMAIN"),
        ("ca 'bad address@example.com' pw", "invalid address"),
        (
            "ca y@example.com pw zimbraMailTransport lmtp:host",
            "zimbraMailTransport",
        ),
        ("cd example.com", "DOMAIN_EXISTS"),
        (
            "md example.com zimbraMailCatchAllAddress @other.com",
            "zimbraMailCatchAllAddress",
        ),
        (
            "mcf zimbraMtaMinimalBackoffTime 5h",
            "zimbraMtaMinimalBackoffTime",
        ),
        ("mcf zimbraMtaMyNetworks 10.0.0.1/8", "zimbraMtaMyNetworks"),
        (
            "mcf posternMailLogSize 8M",
            "posternMailLogSize cannot be set here: the mail log's size is chosen when the flash is formatted: `postern flash format --log-size SIZE`",
        ),
        (
            "mcf zimbraMtaRestriction reject_all",
            "zimbraMtaRestriction",
        ),
        ("gacf zimbraNothing", "zimbraNothing"),
        ("frobnicate", "unknown command"),
        ("aaa foo@example.com foo@example.com", "ACCOUNT_EXISTS"),
        ("raa foo@example.com nope@example.com", "NO_SUCH_ALIAS"),
    ] {
        let e = run(&mut d, line).expect_err(line).to_string();
        assert!(e.contains(needle), "{line}: {e}");
    }
    assert_eq!(d.encode(), snapshot);
    assert!(matches!(execute(&d, &[]), Err(ProvError::Usage(_))));
}

#[test]
fn reads_do_not_return_a_directory() {
    let d = base();
    for line in [
        "ga foo@example.com",
        "gaa",
        "gd example.com",
        "gad",
        "gacf",
        "help",
    ] {
        let out = execute(&d, &words(line)).unwrap();
        assert!(out.directory.is_none(), "{line}");
        assert!(!out.output.is_empty(), "{line}");
    }
}

/// Until the policy stage applies restrictions, `mcf` refuses them by value, with zmprov's shape,
/// and keeps nothing: `gacf` never shows a setting that does nothing.
#[test]
fn settings_the_box_does_not_enforce_are_refused() {
    let mut d = base();
    let snapshot = d.encode();
    for (line, expected) in [
        (
            "mcf postscreen_greet_action enforce",
            "ERROR: service.UNSUPPORTED (postscreen_greet_action enforce: not supported yet)",
        ),
        (
            "mcf zimbraAttachmentsBlocked TRUE",
            "ERROR: service.UNSUPPORTED (zimbraAttachmentsBlocked: not supported yet)",
        ),
        (
            "md example.com zimbraMtaBlockedExtension exe",
            "ERROR: account.INVALID_ATTR_NAME (invalid attr name: zimbraMtaBlockedExtension)",
        ),
        (
            "mcf zimbraMtaNoSuchThing 1",
            "ERROR: account.INVALID_ATTR_NAME (invalid attr name: zimbraMtaNoSuchThing)",
        ),
        (
            "ma foo@example.com zimbraMailQuota 10",
            "ERROR: account.INVALID_ATTR_NAME (invalid attr name: zimbraMailQuota)",
        ),
        (
            "modifyDomain example.com zimbraFoo x",
            "ERROR: account.INVALID_ATTR_NAME (invalid attr name: zimbraFoo)",
        ),
        (
            "gacf zimbraNothing",
            "ERROR: account.INVALID_ATTR_NAME (invalid attr name: zimbraNothing)",
        ),
    ] {
        let e = run(&mut d, line).expect_err(line).to_string();
        assert_eq!(e, expected, "{line}");
    }
    assert_eq!(d.encode(), snapshot);
    // Clearing asks for what is already so, as zmprov allows for any attribute.
    ok(&mut d, "mcf zimbraMtaRestriction ''");
    ok(&mut d, "mcf zimbraAttachmentsBlocked ''");
    assert!(!ok(&mut d, "gacf").contains("zimbraMtaRestriction"));
}

/// A flash that holds restrictions from an older firmware loads, and `gacf` shows them applied.
#[test]
fn restrictions_on_flash_load_and_show() {
    let mut d = base();
    let mut config = d.config().clone();
    config
        .load(
            "zimbraMtaRestriction",
            &["check_policy_service inet:127.0.0.1:10023".to_string()],
        )
        .unwrap();
    d.set_config(config);
    let mut d = Directory::decode(&d.encode()).unwrap();
    assert_eq!(
        ok(&mut d, "gacf zimbraMtaRestriction"),
        "zimbraMtaRestriction: check_policy_service inet:127.0.0.1:10023\n"
    );
    ok(&mut d, "mcf zimbraMtaRestriction ''");
    assert_eq!(ok(&mut d, "gacf zimbraMtaRestriction"), "");
}

/// `attr ''` clears any attribute the box knows, single- or multi-valued, on the config, a
/// domain and an account, as zmprov does; a cleared config attribute shows its default again.
/// A name the box does not know stays refused as zmprov refuses it.
#[test]
fn every_known_attribute_clears_with_an_empty_value() {
    let mut d = base();
    ok(
        &mut d,
        "mcf zimbraMtaRelayHost mail.example.com zimbraMtaDnsLookupsEnabled FALSE posternHostsTable mail.example.com=127.0.0.2 posternHostsTable zimbra.example.com=127.0.0.3 zimbraMtaMaximalQueueLifetime 2d virtual_transport lmtp:zimbra.example.com:7025",
    );
    ok(
        &mut d,
        "md example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:mail.example.com posternAuthoritative FALSE",
    );
    ok(
        &mut d,
        "ma foo@example.com zimbraMailTransport smtp:mail.example.com:25 zimbraMailStatus disabled zimbraMailForwardingAddress a@other.example zimbraMailForwardingAddress b@other.example zimbraPrefMailForwardingAddress c@other.example zimbraPrefMailLocalDeliveryDisabled TRUE",
    );
    for attr in MtaConfig::ATTRS {
        ok(&mut d, &format!("mcf {attr} ''"));
    }
    // Zimbra's common blocked extensions are a list the box ships with: clearing it is how an
    // admin stops blocking them, so it stays empty rather than coming back.
    let mut want = MtaConfig::default();
    want.set("zimbraMtaCommonBlockedExtension", &[String::new()])
        .unwrap();
    assert_eq!(d.config(), &want);
    assert_eq!(ok(&mut d, "gacf zimbraMtaCommonBlockedExtension"), "");
    assert_eq!(
        ok(
            &mut d,
            "gacf zimbraMtaMaximalQueueLifetime zimbraMtaDnsLookupsEnabled"
        ),
        "zimbraMtaMaximalQueueLifetime: 5d\nzimbraMtaDnsLookupsEnabled: TRUE\n"
    );
    for attr in &Domain::ATTRS[1..] {
        ok(&mut d, &format!("md example.com {attr} ''"));
    }
    assert_eq!(
        d.domain("example.com"),
        Domain::new("example.com").ok().as_ref()
    );
    for attr in [
        "zimbraMailTransport",
        "zimbraMailStatus",
        "zimbraMailForwardingAddress",
        "zimbraPrefMailForwardingAddress",
        "zimbraPrefMailLocalDeliveryDisabled",
    ] {
        ok(&mut d, &format!("ma foo@example.com {attr} ''"));
    }
    let foo = d.account("foo@example.com").unwrap();
    assert_eq!(foo.transport(), None);
    assert_eq!(foo.status(), crate::directory::MailStatus::Enabled);
    assert!(foo.forwarding().is_none());
    // Known to Zimbra, not acted on yet: clearing it asks for what is already so.
    ok(
        &mut d,
        "mcf zimbraSpamIsSpamAccount '' zimbraSpamIsNotSpamAccount ''",
    );
    for line in [
        "mcf zimbraNoSuchThing ''",
        "ma foo@example.com zimbraNoSuchThing ''",
    ] {
        let e = run(&mut d, line).expect_err(line).to_string();
        assert!(
            e.starts_with("ERROR: account.INVALID_ATTR_NAME"),
            "{line}: {e}"
        );
    }
}

/// `-attr value` removes a value typed another way that means the same, and `+attr value`
/// does not add it twice.
#[test]
fn removing_a_value_matches_its_meaning_not_its_spelling() {
    let mut d = base();
    ok(&mut d, "mcf zimbraMtaRelayHost mail.example.com");
    ok(&mut d, "mcf -zimbraMtaRelayHost smtp:mail.example.com:25");
    assert_eq!(d.config().relay_host, None);
    ok(
        &mut d,
        "ma foo@example.com zimbraMailTransport smtp:mail.example.com:25",
    );
    ok(
        &mut d,
        "ma foo@example.com -zimbraMailTransport SMTP:Mail.Example.com",
    );
    assert_eq!(d.account("foo@example.com").unwrap().transport(), None);
    ok(
        &mut d,
        "mcf posternHostsTable mail.example.com=127.0.0.2 +posternHostsTable MAIL.example.com=127.0.0.2",
    );
    assert_eq!(
        ok(&mut d, "gacf posternHostsTable"),
        "posternHostsTable: mail.example.com=127.0.0.2\n"
    );
}

/// `md` sets a domain's DKIM key as LDAP would; `gd` never shows it, the snapshot keeps it.
#[test]
fn a_domains_dkim_key_is_kept_but_never_shown() {
    let mut d = base();
    let pem = crate::directory::domain_dkim::tests::ed25519_pem();
    let args: Vec<String> = ["md", "example.com", "zimbraDKIMSelector", "s1"]
        .into_iter()
        .map(str::to_string)
        .chain(["zimbraDKIMPrivateKey".to_string(), pem.clone()])
        .collect();
    d = crate::directory::prov::execute(&d, &args)
        .unwrap()
        .directory
        .unwrap();
    let shown = ok(&mut d, "gd example.com");
    assert!(shown.contains("zimbraDKIMSelector: s1"), "{shown}");
    assert!(
        shown.contains("zimbraDKIMPrivateKey: (private key, not shown)"),
        "{shown}"
    );
    assert!(!shown.contains("BEGIN"), "{shown}");
    let back = Directory::decode(&d.encode()).unwrap();
    let key = |d: &Directory| d.domain("example.com").and_then(|x| x.dkim()).cloned();
    assert_eq!(key(&back), key(&d));
    assert!(key(&back).is_some_and(|k| k.signing().is_some()));
}
