//! Host mode as an admin meets it: start, status, bad input, kill -9 and restart.

use tests::host::{HostPostern, SmtpClient, postern};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn status_reports_version_flash_and_listeners() {
    let p = HostPostern::start(&[]);
    let status = p.admin_ok(&["status"]);
    assert!(
        status.starts_with(&format!("postern {}", env!("CARGO_PKG_VERSION"))),
        "{status}"
    );
    assert!(status.contains("hostname: mx.test.example"), "{status}");
    assert!(status.contains("67108864 bytes, 64.0 MiB"), "{status}");
    assert!(status.contains("listener: smtp 127.0.0.1:"), "{status}");
    let mut c = SmtpClient::connect(p.listener("smtp"));
    assert!(c.reply().starts_with("220 mx.test.example "));
}

#[test]
fn bad_command_lines_give_one_clear_line_and_fail() {
    for (args, code, want) in [
        (
            vec!["frobnicate"],
            2,
            "unrecognized subcommand 'frobnicate'",
        ),
        (vec!["run", "--bogus"], 2, "unexpected argument '--bogus'"),
        (
            vec!["run", "--flash", "/tmp/x", "--flash-size", "12Q"],
            2,
            "unknown unit",
        ),
        (
            vec!["status", "--control", "/nonexistent/postern.sock"],
            1,
            "cannot reach the postern daemon",
        ),
    ] {
        let out = postern(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "{args:?} should say one line: {err}"
        );
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn bad_flash_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("small.img");
    std::fs::write(&flash, vec![0xffu8; 4096]).unwrap();
    let control = dir.path().join("c.sock");
    let (f, c) = (flash.to_str().unwrap(), control.to_str().unwrap());
    let out = postern(&[
        "run",
        "--flash",
        f,
        "--flash-size",
        "1M",
        "--control",
        c,
        "--smtp",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is 4096 bytes, not the 1048576 bytes asked for"),
        "{}",
        stderr(&out)
    );

    let missing = dir.path().join("no/such/dir/flash.img");
    let out = postern(&[
        "run",
        "--flash",
        missing.to_str().unwrap(),
        "--control",
        c,
        "--smtp",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot open flash"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_second_daemon_on_the_same_flash_is_refused() {
    let p = HostPostern::start(&[]);
    let other = p.dir.join("other.sock");
    let out = postern(&[
        "run",
        "--flash",
        p.flash.to_str().unwrap(),
        "--control",
        other.to_str().unwrap(),
        "--smtp",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("in use by another postern"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kill_9_leaves_a_stale_socket_that_a_restart_clears() {
    let mut p = HostPostern::start(&[]);
    p.kill9();
    assert!(
        p.control.exists(),
        "the killed daemon's socket stays behind"
    );
    p.restart();
    assert!(p.admin_ok(&["status"]).contains("uptime: 0d 00:00:0"));
    assert!(p.stop().success());
    assert!(
        !p.control.exists(),
        "a clean stop removes the control socket"
    );
}

/// `postern update` is an admin command the daemon carries out: the slots, and bundles fetched
/// from a URL and checked before anything is written.
#[test]
fn update_commands_go_through_the_daemon_and_fetch_from_urls() {
    use std::io::{Read, Write};
    let p = HostPostern::start(&[]);
    let esp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(esp.path().join("EFI/Linux")).unwrap();
    let esp_dir = esp.path().to_string_lossy().to_string();
    let status = p.admin_ok(&["update", "status", "--esp", &esp_dir]);
    assert!(
        status.contains("slot A: empty\nslot B: empty\n"),
        "{status}"
    );

    // A web server on 127.0.0.1 with one file that is not a bundle.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in server.incoming().flatten() {
            let mut s = stream;
            let mut head = [0u8; 2048];
            let n = s.read(&mut head).unwrap_or(0);
            let request = String::from_utf8_lossy(&head[..n]).into_owned();
            let reply: &[u8] = if request.starts_with("GET /junk.bundle ") {
                b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nnot a zip"
            } else {
                b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            };
            let _ = s.write_all(reply);
        }
    });
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let out = p.admin(&["update", "install", &url("/nothing"), "--esp", &esp_dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not fetched, nothing written: the server answered 404 Not Found"),
        "{}",
        stderr(&out)
    );
    let out = p.admin(&["update", "install", &url("/junk.bundle"), "--esp", &esp_dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refused, nothing written"),
        "{}",
        stderr(&out)
    );
    let slots: Vec<_> = std::fs::read_dir(esp.path().join("EFI/Linux"))
        .unwrap()
        .collect();
    assert!(slots.is_empty(), "{slots:?}");
    let out = p.admin(&["update", "check", "ftp://example.com/b"]);
    assert!(
        stderr(&out).contains("only http:// and https:// URLs"),
        "{}",
        stderr(&out)
    );
}
