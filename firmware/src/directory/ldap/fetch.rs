//! Reading LDAP in a child process. ldap3's message decoder and its control parsers `panic!` on
//! some malformed replies, and the release build aborts on a panic: a broken or hostile LDAP
//! server could stop the whole box. So the binary runs its LDAP client in a child of itself
//! (`postern __ldap-fetch`), which gets the request on stdin and writes the entries on stdout;
//! if it dies, that sync fails and the mail service goes on. Tests, which are not the `postern`
//! binary, read in process.
//!
//! The parent trusts nothing the child writes: the reply is postcard, decoded into owned values,
//! and anything that does not decode is an error for that sync.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::{self, ClientError};
use super::entries::Entries;
use super::locate::ServerNames;
use super::probe::{self, ServerResult};
use super::syncrepl::SyncOutcome;
use crate::config::localconfig::{LdapUrl, LocalConfig};

/// The first argument that makes the binary a fetch child.
pub const CHILD_ARG: &str = "__ldap-fetch";
/// Most bytes a child may answer with (100 000 accounts are ~30-50 MB).
const MAX_REPLY: u64 = 512 << 20;

static CHILD_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Called by the `postern` binary at start: syncs read LDAP in a child of this executable.
pub fn isolate_in_child(exe: PathBuf) {
    let _ = CHILD_EXE.set(exe);
}

/// What a child is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Request {
    Search {
        settings: Vec<(String, String)>,
        names: ServerNames,
        base: String,
        filter: String,
        attrs: Vec<String>,
        /// RFC 4533 refreshOnly, with the cookie if any; `None`: a plain search.
        sync: Option<Option<Vec<u8>>>,
    },
    /// AUTH by a simple bind as the user.
    Bind {
        settings: Vec<(String, String)>,
        names: ServerNames,
        url: String,
        dn: String,
        password: String,
    },
    /// `postern ldap test`: bind to each server, read nothing.
    TestBind {
        settings: Vec<(String, String)>,
        names: ServerNames,
    },
}

/// The last frame of a child's answer.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Entries {
        server: String,
        /// How many entries the chunks before this frame hold.
        count: usize,
        sync: Option<SyncOutcome>,
    },
    Bound(bool),
    Failed(String),
    Tested(Vec<ServerResult>),
}

/// A child answers in frames: a kind byte, a length (u32, little-endian), then that many bytes.
/// A search's entries come first, one frame per chunk as [`Entries`] packs them, and the parent
/// keeps each as it arrives: read whole and then decoded, 100 000 accounts were the ~30 MB
/// reply held twice, and more while the buffer grew.
const FRAME_CHUNK: u8 = 0;
/// The last frame: the [`Reply`], in postcard.
const FRAME_REPLY: u8 = 1;

/// What one fetch brought: the server that answered, its entries, and for an RFC 4533 search
/// the sync states and messages.
pub type Fetched = (String, Entries, Option<SyncOutcome>);

/// One search, and how to find the servers it may ask.
pub struct Search<'a> {
    pub base: &'a str,
    pub filter: &'a str,
    pub attrs: &'a [&'a str],
    /// RFC 4533 refreshOnly with this cookie, if any; `None`: a plain search.
    pub sync: Option<Option<&'a [u8]>>,
}

/// Runs one search, in a child when this is the `postern` binary.
pub async fn fetch(
    settings: &LocalConfig,
    names: &ServerNames,
    search: Search<'_>,
) -> Result<Fetched, ClientError> {
    match CHILD_EXE.get() {
        Some(exe) => in_child(exe, settings, names, search).await,
        None => in_process(settings, names, search).await,
    }
}

async fn in_process(
    settings: &LocalConfig,
    names: &ServerNames,
    Search {
        base,
        filter,
        attrs,
        sync,
    }: Search<'_>,
) -> Result<Fetched, ClientError> {
    let mut session = client::open(settings, names).await?;
    let result = match sync {
        None => session.search(base, filter, attrs).await.map(|e| (e, None)),
        Some(cookie) => session
            .sync_search(base, filter, attrs, cookie)
            .await
            .map(|(e, o)| (e, Some(o))),
    };
    let server = session.url().to_string();
    session.close().await;
    let (entries, outcome) = result?;
    Ok((server, entries, outcome))
}

/// The longest a child may take before it is killed: its own timeouts end it well before, this
/// is for a child stuck in a way they do not cover.
fn child_deadline(settings: &LocalConfig) -> Duration {
    let per_url = settings.connect_timeout + settings.read_timeout * 2;
    (per_url * settings.ldap_urls.len().max(1) as u32).max(Duration::from_secs(60)) * 10
}

async fn in_child(
    exe: &PathBuf,
    settings: &LocalConfig,
    names: &ServerNames,
    search: Search<'_>,
) -> Result<Fetched, ClientError> {
    let request = Request::Search {
        settings: settings.to_pairs(),
        names: names.clone(),
        base: search.base.to_string(),
        filter: search.filter.to_string(),
        attrs: search.attrs.iter().map(|a| a.to_string()).collect(),
        sync: search.sync.map(|c| c.map(<[u8]>::to_vec)),
    };
    match run_child(exe, settings, &request).await? {
        (
            Reply::Entries {
                server,
                count,
                sync,
            },
            chunks,
        ) => Ok((server, Entries::from_chunks(chunks, count), sync)),
        (Reply::Failed(why), _) => Err(ClientError::Child(why)),
        (Reply::Bound(_) | Reply::Tested(_), _) => {
            Err(ClientError::Child("the fetch child answered a bind".into()))
        }
    }
}

/// Reads a child's frames up to its reply: the reply and the entry chunks before it.
async fn read_frames(
    out: &mut (impl tokio::io::AsyncRead + Unpin),
) -> std::io::Result<(Reply, Vec<Vec<u8>>)> {
    use std::io::{Error, ErrorKind};
    let mut chunks = Vec::new();
    let mut total: u64 = 0;
    loop {
        let mut head = [0u8; 5];
        out.read_exact(&mut head).await?;
        let [kind, l0, l1, l2, l3] = head;
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        total += u64::from(len);
        if total > MAX_REPLY {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!("reply over {} MiB", MAX_REPLY >> 20),
            ));
        }
        let mut bytes = vec![0; len as usize];
        out.read_exact(&mut bytes).await?;
        match kind {
            FRAME_CHUNK => chunks.push(bytes),
            FRAME_REPLY => {
                let reply = postcard::from_bytes::<Reply>(&bytes)
                    .map_err(|e| Error::new(ErrorKind::InvalidData, e.to_string()))?;
                return Ok((reply, chunks));
            }
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    format!("unknown frame kind {other}"),
                ));
            }
        }
    }
}

/// Whether `password` is right for `dn` at `url` (a simple bind over TLS), in a child when this
/// is the `postern` binary.
pub async fn check_password(
    settings: &LocalConfig,
    names: &ServerNames,
    url: &LdapUrl,
    dn: &str,
    password: &str,
) -> Result<bool, ClientError> {
    let Some(exe) = CHILD_EXE.get() else {
        return client::check_password(settings, names, url, dn, password).await;
    };
    let request = Request::Bind {
        settings: settings.to_pairs(),
        names: names.clone(),
        url: url.to_string(),
        dn: dn.to_string(),
        password: password.to_string(),
    };
    match run_child(exe, settings, &request).await?.0 {
        Reply::Bound(ok) => Ok(ok),
        Reply::Failed(why) => Err(ClientError::Child(why)),
        Reply::Entries { .. } | Reply::Tested(_) => Err(ClientError::Child(
            "the fetch child answered a search".into(),
        )),
    }
}

/// A test bind to each server of `ldap_url` (see [`probe`]), in a child when this is the
/// `postern` binary.
pub async fn test_bind(
    settings: &LocalConfig,
    names: &ServerNames,
) -> Result<Vec<ServerResult>, ClientError> {
    let Some(exe) = CHILD_EXE.get() else {
        return Ok(probe::test_bind(settings, names).await);
    };
    let request = Request::TestBind {
        settings: settings.to_pairs(),
        names: names.clone(),
    };
    match run_child(exe, settings, &request).await?.0 {
        Reply::Tested(results) => Ok(results),
        Reply::Failed(why) => Err(ClientError::Child(why)),
        Reply::Entries { .. } | Reply::Bound(_) => Err(ClientError::Child(
            "the fetch child answered something else than a test bind".into(),
        )),
    }
}

/// Starts a child, hands it the request (on a pipe: a password never shows in `ps`), and reads
/// its reply, with a search's entry chunks.
async fn run_child(
    exe: &PathBuf,
    settings: &LocalConfig,
    request: &Request,
) -> Result<(Reply, Vec<Vec<u8>>), ClientError> {
    let bytes = postcard::to_allocvec(request).map_err(|e| ClientError::Child(e.to_string()))?;
    let mut child = tokio::process::Command::new(exe)
        .arg(CHILD_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ClientError::Child(format!("cannot start {}: {e}", exe.display())))?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let talk = async {
        if let Some(stdin) = stdin.as_mut() {
            stdin.write_all(&bytes).await?;
            stdin.shutdown().await?;
        }
        drop(stdin.take());
        let read = match stdout.as_mut() {
            Some(out) => read_frames(out).await,
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        // A child that died says so by its status, whatever it wrote before.
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((read, status))
    };
    let (read, status) = match tokio::time::timeout(child_deadline(settings), talk).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            return Err(ClientError::Child(format!(
                "talking to the fetch child: {e}"
            )));
        }
        Err(_) => {
            return Err(ClientError::Child(
                "the fetch child took too long; killed".into(),
            ));
        }
    };
    if !status.success() {
        return Err(ClientError::Child(format!(
            "the fetch child died ({status}): the server sent something the LDAP client could \
             not take"
        )));
    }
    read.map_err(|e| ClientError::Child(format!("unreadable reply from the fetch child: {e}")))
}

/// What the child does with a request: the reply, and a search's entry chunks.
async fn serve(request: Request) -> (Reply, Vec<Vec<u8>>) {
    let reply = match request {
        Request::Search {
            settings,
            names,
            base,
            filter,
            attrs,
            sync,
        } => {
            let settings = match LocalConfig::from_pairs(&settings) {
                Ok(s) => s,
                Err(e) => return (Reply::Failed(e.to_string()), Vec::new()),
            };
            let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
            let sync = sync.as_ref().map(|c| c.as_deref());
            let search = Search {
                base: &base,
                filter: &filter,
                attrs: &attrs,
                sync,
            };
            match in_process(&settings, &names, search).await {
                Ok((server, entries, sync)) => {
                    let (chunks, count) = entries.into_chunks();
                    return (
                        Reply::Entries {
                            server,
                            count,
                            sync,
                        },
                        chunks,
                    );
                }
                Err(e) => Reply::Failed(e.to_string()),
            }
        }
        Request::Bind {
            settings,
            names,
            url,
            dn,
            password,
        } => {
            let parsed = LocalConfig::from_pairs(&settings)
                .map_err(|e| e.to_string())
                .and_then(|s| Ok((s, url.parse::<LdapUrl>().map_err(str::to_string)?)));
            match parsed {
                Ok((settings, url)) => {
                    match client::check_password(&settings, &names, &url, &dn, &password).await {
                        Ok(ok) => Reply::Bound(ok),
                        Err(e) => Reply::Failed(e.to_string()),
                    }
                }
                Err(e) => Reply::Failed(e),
            }
        }
        Request::TestBind { settings, names } => match LocalConfig::from_pairs(&settings) {
            Ok(settings) => Reply::Tested(probe::test_bind(&settings, &names).await),
            Err(e) => Reply::Failed(e.to_string()),
        },
    };
    (reply, Vec::new())
}

/// The child: reads one request on stdin, writes the reply on stdout, exits 0. Returns the exit
/// code.
pub fn child_main() -> i32 {
    use std::io::{Read, Write};
    let mut input = Vec::new();
    if std::io::stdin()
        .take(16 << 20)
        .read_to_end(&mut input)
        .is_err()
    {
        return 2;
    }
    let Ok(request) = postcard::from_bytes::<Request>(&input) else {
        return 2;
    };
    let (reply, chunks) = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Err(e) => (Reply::Failed(format!("no runtime: {e}")), Vec::new()),
        Ok(rt) => rt.block_on(serve(request)),
    };
    let Ok(bytes) = postcard::to_allocvec(&reply) else {
        return 2;
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let frames = chunks
        .iter()
        .map(|c| (FRAME_CHUNK, c.as_slice()))
        .chain([(FRAME_REPLY, bytes.as_slice())]);
    for (kind, body) in frames {
        let Ok(len) = u32::try_from(body.len()) else {
            return 2;
        };
        let head = [&[kind][..], &len.to_le_bytes()].concat();
        if out
            .write_all(&head)
            .and_then(|()| out.write_all(body))
            .is_err()
        {
            return 2;
        }
    }
    if out.flush().is_err() {
        return 2;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::super::entry::{MalformedEntry, RawEntry};
    use super::*;

    fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        [&[kind][..], &len.to_le_bytes(), body].concat()
    }

    fn read(bytes: &[u8]) -> std::io::Result<(Reply, Vec<Vec<u8>>)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(read_frames(&mut &bytes[..]))
    }

    /// A child's entries arrive chunk by chunk and come back as they were packed.
    #[test]
    fn a_search_reply_comes_back_chunk_by_chunk() {
        let big = "x".repeat(300 << 10);
        let sent: Entries = (0..12)
            .map(|i| {
                let cn = format!("{i}{big}");
                Ok(RawEntry::new(&format!("uid={i},dc=e"), &[("cn", &[&*cn])]))
            })
            .chain([Err(MalformedEntry::NotUtf8)])
            .collect();
        let (chunks, count) = sent.clone().into_chunks();
        assert!(chunks.len() > 2);
        let reply = Reply::Entries {
            server: "ldap://127.0.0.1".into(),
            count,
            sync: None,
        };
        let mut wire: Vec<u8> = chunks.iter().flat_map(|c| frame(FRAME_CHUNK, c)).collect();
        wire.extend(frame(FRAME_REPLY, &postcard::to_allocvec(&reply).unwrap()));
        let (back, got) = read(&wire).unwrap();
        let Reply::Entries { server, count, .. } = back else {
            panic!("{back:?}");
        };
        assert_eq!((server.as_str(), count), ("ldap://127.0.0.1", 13));
        let entries: Vec<_> = Entries::from_chunks(got, count).into_iter().collect();
        assert_eq!(entries, sent.into_iter().collect::<Vec<_>>());
        // Cut anywhere, or with a frame of an unknown kind or a reply that does not decode: an
        // error, never entries.
        for cut in [0, 3, 5, wire.len() / 2, wire.len() - 1] {
            assert!(read(&wire[..cut]).is_err(), "cut at {cut}");
        }
        assert!(read(&frame(7, b"x")).is_err());
        assert!(read(&frame(FRAME_REPLY, &[0xff; 8])).is_err());
        // A length past what a reply may be is refused before anything is allocated for it.
        let huge = [&[FRAME_CHUNK][..], &u32::MAX.to_le_bytes()].concat();
        let e = read(&huge).unwrap_err();
        assert!(e.to_string().contains("reply over"), "{e}");
    }
}
