//! `gitgate-upstream`: the Git server behind the gateway in tests and the demo.
//!
//! Serves the bare repositories below `--root` over HTTP/1.1 by running the real
//! `git http-backend` as a CGI program for every request, with pushes enabled. With
//! `--credential-file` it stands for a Git server that wants its own credential: a request
//! whose `Authorization` is not exactly the file's value is answered 401 with a Basic
//! challenge, as a hosted Git server would (the gateway injects that credential; agents never
//! hold it). Bodies stream both ways; neither is held in memory whole.
//!
//! ```text
//! gitgate-upstream --listen 127.0.0.1:8091 --root .gitgate/repos [--log requests.jsonl]
//!                  [--credential-file .gitgate/git-credential] [--seed-demo]
//! ```
//!
//! With `--log`, one JSON line per request is appended (see `gitgate_integration::upstream_log`).

use std::convert::Infallible;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use gitgate_integration::cgi::{self, CgiHead};
use gitgate_integration::repo;
use gitgate_integration::upstream_log::{AuthorizationSeen, Outcome, UpstreamRequest};
use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Size of one read from the backend's stdout: one body frame at most.
const READ_CHUNK: usize = 64 * 1024;

/// Frames queued towards a slow client before the backend is made to wait.
const BODY_QUEUE: usize = 4;

/// How long the backend of a broken-off request gets to end on its own once its stdin is
/// closed, before it is killed (see [`end_backend`]).
const EOF_GRACE: Duration = Duration::from_secs(1);

/// How long receive-pack then gets to clean up and exit, as seen from its stdout's end.
const EXIT_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(about = "Serves bare Git repositories over smart HTTP with git http-backend")]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:8091 (port 0 picks a free one).
    #[arg(long)]
    listen: SocketAddr,
    /// Directory holding the bare repositories (GIT_PROJECT_ROOT).
    #[arg(long)]
    root: PathBuf,
    /// Append one JSON line per request to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Create the sample repository `demo.git` below the root first, unless it exists.
    #[arg(long)]
    seed_demo: bool,
    /// Require this exact `Authorization` value (the file's first line, e.g.
    /// `Basic <base64 user:password>`) on every request; without the flag there is no check.
    #[arg(long)]
    credential_file: Option<PathBuf>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot run `git --exec-path`: {0}")]
    ExecPath(std::io::Error),
    #[error("`git --exec-path` failed: {0}")]
    ExecPathStatus(String),
    #[error("git-http-backend not found at {0}")]
    NoBackend(PathBuf),
    #[error("repository root {path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot seed the demo repository: {0}")]
    Seed(gitgate_integration::HarnessError),
    #[error("cannot read the credential file {path}: {source}")]
    Credential {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the credential file {0} is empty")]
    EmptyCredential(PathBuf),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What every request needs, built once at start.
struct Server {
    /// Absolute path of `git-http-backend` from `git --exec-path`.
    backend: PathBuf,
    /// Absolute repository root.
    root: PathBuf,
    /// The PATH handed to the backend, so hooks find `sh` and `git`.
    path_env: OsString,
    /// The request log, if asked for; one `write_all` per line keeps lines whole.
    log: Option<Mutex<File>>,
    /// SHA-256 of the `Authorization` value every request must carry, when one is required.
    /// Kept as a digest so that comparing with it takes the same time whatever the guess.
    credential_sha256: Option<[u8; 32]>,
}

type ResponseBody = BoxBody<Bytes, std::io::Error>;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gitgate-upstream: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), StartError> {
    std::fs::create_dir_all(&args.root).map_err(|source| StartError::Root {
        path: args.root.clone(),
        source,
    })?;
    let root = std::fs::canonicalize(&args.root).map_err(|source| StartError::Root {
        path: args.root.clone(),
        source,
    })?;
    if args.seed_demo && !root.join(repo::DEMO_REPO).exists() {
        repo::seed_demo(&root).map_err(StartError::Seed)?;
    }
    let log = match &args.log {
        Some(path) => Some(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| StartError::Log {
                    path: path.clone(),
                    source,
                })?,
        )),
        None => None,
    };
    let credential_sha256 = match &args.credential_file {
        Some(path) => Some(read_credential(path)?),
        None => None,
    };
    let server = Arc::new(Server {
        backend: find_backend()?,
        root,
        path_env: std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        log,
        credential_sha256,
    });

    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: args.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen {
        addr: args.listen,
        source,
    })?;
    println!("gitgate-upstream: listening on http://{local}");
    let _ = std::io::stdout().flush();

    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors or a connection reset before accept: keep serving.
                eprintln!("gitgate-upstream: accept: {err}");
                continue;
            }
        };
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let server = Arc::clone(&server);
                async move { Ok::<_, Infallible>(handle(server, remote, req).await) }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                // A client that hangs up mid-request is normal for git; note it and move on.
                eprintln!("gitgate-upstream: connection from {remote}: {err}");
            }
        });
    }
}

/// The digest of the credential in `path`: its first line, without the line end (Envoy strips
/// trailing CR/LF from file-based secrets too, so both sides read the same value).
fn read_credential(path: &Path) -> Result<[u8; 32], StartError> {
    let text = std::fs::read_to_string(path).map_err(|source| StartError::Credential {
        path: path.to_owned(),
        source,
    })?;
    let value = text.lines().next().unwrap_or("").trim_end();
    if value.is_empty() {
        return Err(StartError::EmptyCredential(path.to_owned()));
    }
    Ok(Sha256::digest(value.as_bytes()).into())
}

/// Whether a request carries the required credential; always true when none is required.
/// Every value of the header is hashed and compared as a digest, so the time taken says nothing
/// about how close a wrong guess was.
fn has_credential(server: &Server, headers: &hyper::HeaderMap) -> bool {
    let Some(wanted) = &server.credential_sha256 else {
        return true;
    };
    headers
        .get_all(hyper::header::AUTHORIZATION)
        .iter()
        .any(|value| <[u8; 32]>::from(Sha256::digest(value.as_bytes())) == *wanted)
}

/// Asks git where its helpers live; `git-http-backend` is one of them.
fn find_backend() -> Result<PathBuf, StartError> {
    let out = std::process::Command::new("git")
        .arg("--exec-path")
        .output()
        .map_err(StartError::ExecPath)?;
    if !out.status.success() {
        return Err(StartError::ExecPathStatus(
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let backend = Path::new(&dir).join("git-http-backend");
    if backend.is_file() {
        Ok(backend)
    } else {
        Err(StartError::NoBackend(backend))
    }
}

/// What the log line of one request starts from; completed when the exchange ends.
struct Exchange {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    authorization: AuthorizationSeen,
}

impl Exchange {
    fn finish(
        self,
        status: u16,
        pump: Pumped,
        response_bytes: u64,
        outcome: Outcome,
    ) -> UpstreamRequest {
        // A broken-off body explains whatever else went wrong, so it wins.
        let outcome = if pump.aborted {
            Outcome::ClientAborted
        } else {
            outcome
        };
        UpstreamRequest {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: self.headers,
            authorization: self.authorization,
            request_bytes: pump.bytes,
            status,
            response_bytes,
            outcome,
        }
    }
}

/// What the request-body pump saw.
#[derive(Debug, Default, Clone, Copy)]
struct Pumped {
    /// Body bytes received from the client.
    bytes: u64,
    /// The client broke the body off.
    aborted: bool,
}

async fn handle(
    server: Arc<Server>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let exchange = Exchange {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| *name != hyper::header::AUTHORIZATION)
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        authorization: AuthorizationSeen::from_values(
            parts
                .headers
                .get_all(hyper::header::AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
        ),
    };

    if !has_credential(&server, &parts.headers) {
        let pump = drain(body).await;
        return unauthorized(&server, exchange, pump);
    }

    if let Some(name) = parts.uri.path().strip_prefix(RECORDED_PREFIX) {
        let name = name.to_owned();
        let pump = drain(body).await;
        return serve_recorded(&server, exchange, pump, &name);
    }

    let mut command = cgi_command(&server, remote, &parts);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!(
                "gitgate-upstream: cannot start {}: {err}",
                server.backend.display()
            );
            let pump = drain(body).await;
            return failure(&server, exchange, pump, "cannot start git http-backend\n");
        }
    };
    // Both pipes were asked for in `cgi_command`; their absence would be a bug in this file.
    let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.start_kill();
        let pump = drain(body).await;
        return failure(&server, exchange, pump, "git http-backend pipes missing\n");
    };

    // The body goes in while the head comes out: a backend that answers early must not block on
    // a full pipe while this side waits for the head.
    let (abort_tx, mut client_gone) = watch::channel(false);
    let pump = tokio::spawn(pump_request(body, stdin, abort_tx));

    let head = tokio::select! {
        head = read_head(&mut stdout) => head,
        () = wait_abort(&mut client_gone) => Err("the client went away first".to_owned()),
    };
    let (head, first) = match head {
        Ok(read) => read,
        Err(reason) => {
            eprintln!(
                "gitgate-upstream: {} {}: {reason}",
                exchange.method, exchange.path
            );
            end_backend(&mut child, Some(stdout)).await;
            let pumped = pump.await.unwrap_or_default();
            return failure(
                &server,
                exchange,
                pumped,
                "git http-backend sent no valid answer\n",
            );
        }
    };

    let mut response = Response::builder().status(head.status);
    for (name, value) in &head.headers {
        // The backend's own header names are well-formed; one that is not is dropped, not fatal.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response = response.header(name, value);
        }
    }
    let (sender, channel) = Channel::<Bytes, std::io::Error>::new(BODY_QUEUE);
    tokio::spawn(pump_response(
        Arc::clone(&server),
        exchange,
        head.status,
        first,
        stdout,
        child,
        pump,
        client_gone,
        sender,
    ));
    response
        .body(channel.boxed())
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad backend head\n"))
}

/// The CGI environment of RFC 3875 plus what git-http-backend reads (GIT_PROJECT_ROOT,
/// GIT_HTTP_EXPORT_ALL, GIT_PROTOCOL), from a cleared environment so the machine's git
/// configuration cannot change what the tests see.
fn cgi_command(
    server: &Server,
    remote: SocketAddr,
    parts: &hyper::http::request::Parts,
) -> Command {
    let mut command = Command::new(&server.backend);
    command
        .env_clear()
        .env("PATH", &server.path_env)
        .env("HOME", &server.root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env(
            "GIT_CONFIG_GLOBAL",
            repository_global_config(&server.root, parts.uri.path())
                .map_or_else(|| OsString::from("/dev/null"), OsString::from),
        )
        // Anonymous pushes are refused by git-http-backend unless receive-pack is switched on.
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.receivepack")
        .env("GIT_CONFIG_VALUE_0", "true")
        .env("GIT_PROJECT_ROOT", &server.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("SERVER_SOFTWARE", "gitgate-upstream")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env(
            "PATH_INFO",
            OsString::from_vec(cgi::decode_path(parts.uri.path())),
        )
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REMOTE_ADDR", remote.ip().to_string())
        .env_remove("REMOTE_USER");
    let headers = &parts.headers;
    if let Some(value) = headers.get(hyper::header::CONTENT_TYPE) {
        command.env(
            "CONTENT_TYPE",
            OsString::from_vec(value.as_bytes().to_vec()),
        );
    }
    // Without CONTENT_LENGTH git reads the body to EOF, which is what a chunked body needs.
    let chunked = headers.contains_key(hyper::header::TRANSFER_ENCODING);
    if let (false, Some(value)) = (chunked, headers.get(hyper::header::CONTENT_LENGTH)) {
        command.env(
            "CONTENT_LENGTH",
            OsString::from_vec(value.as_bytes().to_vec()),
        );
    }
    if let Some(value) = headers.get("git-protocol") {
        command.env(
            "GIT_PROTOCOL",
            OsString::from_vec(value.as_bytes().to_vec()),
        );
    }
    for name in headers.keys() {
        // Credentials are not handed to CGI programs (RFC 3875 4.1.18); the two content headers
        // already have their own variables.
        if name == hyper::header::AUTHORIZATION
            || name == hyper::header::PROXY_AUTHORIZATION
            || name == hyper::header::CONTENT_TYPE
            || name == hyper::header::CONTENT_LENGTH
        {
            continue;
        }
        let values: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
        let var = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        command.env(var, OsString::from_vec(values.join(b", ".as_slice())));
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// Copies the request body into the backend's stdin and counts it. When the backend stops
/// reading, the rest is still read and counted: answering a client before it has sent its whole
/// body makes curl fail with a broken pipe and lose the answer.
///
/// A body broken off by the client closes the backend's stdin and is reported on `abort`, so
/// that the backend is ended ([`end_backend`]): git http-backend loops forever on an early EOF
/// when CONTENT_LENGTH promised more (its `pipe_fixed_length` treats a 0-byte read as
/// progress).
async fn pump_request(mut body: Incoming, stdin: ChildStdin, abort: watch::Sender<bool>) -> Pumped {
    let mut stdin = Some(stdin);
    let mut pumped = Pumped::default();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pumped.bytes += data.len() as u64;
                if let Some(pipe) = stdin.as_mut()
                    && pipe.write_all(&data).await.is_err()
                {
                    stdin = None;
                }
            }
            Some(Err(_)) => {
                pumped.aborted = true;
                let _ = abort.send(true);
                break;
            }
            None => break,
        }
    }
    // Dropping stdin is the end of the body for the backend.
    drop(stdin);
    pumped
}

/// Ends the backend of an exchange the client broke off so that git cleans up after itself:
/// the objects of a refused push must not stay in the repository's quarantine directory.
///
/// receive-pack unpacks a push into `objects/tmp_objdir-incoming-*` (tmp-objdir.c) and removes
/// it from an `atexit` handler only: since git 2.39 ("tmp-objdir: skip clean up when handling
/// a signal") a receive-pack ended by any signal leaves the directory behind, for `git gc` to
/// find later. receive-pack must therefore see the end of its input and exit on its own:
///
/// 1. stdin is already closed (the request pump's end). A receive-pack that reads the body
///    itself (a chunked request, no CONTENT_LENGTH) sees the early EOF, its index-pack or
///    unpack-objects dies on the truncated pack, it reports "unpacker error" and exits
///    normally, quarantine removed; http-backend then exits too.
/// 2. With CONTENT_LENGTH set, http-backend copies the body into a pipe to receive-pack itself
///    and spins on the early EOF (`pipe_fixed_length` treats a 0-byte read as progress). After
///    [`EOF_GRACE`] it gets SIGKILL, which closes its end of that pipe, so receive-pack sees
///    the EOF as in 1. Not SIGTERM: http-backend's `clean_on_exit` would pass that signal on
///    to receive-pack, which would then die by it and keep its quarantine.
///
/// Meanwhile the backend's stdout is read and dropped: receive-pack writes its report there
/// (it shares http-backend's stdout), and a closed pipe would kill it with SIGPIPE, again a
/// signal. That stdout ends when its last writer, receive-pack included, has exited, which is
/// what this waits for (at most [`EXIT_GRACE`]) so the log line comes after git's cleanup.
async fn end_backend(child: &mut Child, stdout: Option<ChildStdout>) {
    let drained = stdout.map(|mut stdout| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await;
        })
    });
    if tokio::time::timeout(EOF_GRACE, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    if let Some(drained) = drained {
        let _ = tokio::time::timeout(EXIT_GRACE, drained).await;
    }
}

/// Resolves once the request pump has reported a broken-off body; never, if the body ended
/// normally.
async fn wait_abort(client_gone: &mut watch::Receiver<bool>) {
    loop {
        if *client_gone.borrow_and_update() {
            return;
        }
        if client_gone.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Reads a request body to its end without a backend, counting it.
async fn drain(mut body: Incoming) -> Pumped {
    let mut pumped = Pumped::default();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    pumped.bytes += data.len() as u64;
                }
            }
            Some(Err(_)) => {
                pumped.aborted = true;
                return pumped;
            }
            None => return pumped,
        }
    }
}

/// Reads stdout until the CGI head is complete; returns it and the body bytes read with it.
async fn read_head(stdout: &mut ChildStdout) -> Result<(CgiHead, Bytes), String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = stdout
            .read(&mut chunk)
            .await
            .map_err(|err| format!("reading stdout: {err}"))?;
        if n == 0 {
            return Err(format!(
                "stdout ended after {} bytes, before the cgi head",
                buf.len()
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = cgi::parse_head(&buf).map_err(|err| err.to_string())? {
            let rest = Bytes::copy_from_slice(&buf[head.head_len..]);
            return Ok((head, rest));
        }
    }
}

/// Streams the backend's stdout to the client, then writes the log line. The body ends only
/// after the line is written, so a test that reads the log right after git returns finds it.
#[allow(clippy::too_many_arguments)] // reason: one task owning every piece of one exchange
async fn pump_response(
    server: Arc<Server>,
    exchange: Exchange,
    status: u16,
    first: Bytes,
    mut stdout: ChildStdout,
    mut child: Child,
    pump: JoinHandle<Pumped>,
    mut client_gone: watch::Receiver<bool>,
    mut sender: Sender<Bytes, std::io::Error>,
) {
    let mut sent = 0u64;
    let mut outcome = Outcome::Complete;
    let mut pending = (!first.is_empty()).then_some(first);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let data = match pending.take() {
            Some(data) => data,
            None => {
                let read = tokio::select! {
                    read = stdout.read(&mut buf) => read,
                    () = wait_abort(&mut client_gone) => {
                        outcome = Outcome::ClientAborted;
                        break;
                    }
                };
                match read {
                    Ok(0) => break,
                    Ok(n) => Bytes::copy_from_slice(&buf[..n]),
                    Err(err) => {
                        eprintln!("gitgate-upstream: reading backend stdout: {err}");
                        outcome = Outcome::BackendFailed;
                        break;
                    }
                }
            }
        };
        let len = data.len() as u64;
        if sender.send(Frame::data(data)).await.is_err() {
            // The client is gone: stop the backend instead of letting it write into nothing.
            outcome = Outcome::ClientAborted;
            break;
        }
        sent += len;
    }
    if outcome == Outcome::ClientAborted {
        end_backend(&mut child, Some(stdout)).await;
    }
    let pumped = pump.await.unwrap_or_default();
    if let Ok(exit) = child.wait().await
        && !exit.success()
        && outcome == Outcome::Complete
    {
        eprintln!(
            "gitgate-upstream: {} {}: backend {exit}",
            exchange.method, exchange.path
        );
    }
    write_log(&server, exchange.finish(status, pumped, sent, outcome));
    drop(sender);
}

/// Answers 502 when the backend could not serve, and logs it.
fn failure(
    server: &Server,
    exchange: Exchange,
    pump: Pumped,
    text: &'static str,
) -> Response<ResponseBody> {
    let status = StatusCode::BAD_GATEWAY;
    let len = text.len() as u64;
    write_log(
        server,
        exchange.finish(status.as_u16(), pump, len, Outcome::BackendFailed),
    );
    plain(status, text)
}

/// Answers 401 with a Basic challenge to a request without the server's credential, and logs
/// it, so a test can tell a request that reached this server from one that never did.
fn unauthorized(server: &Server, exchange: Exchange, pump: Pumped) -> Response<ResponseBody> {
    let status = StatusCode::UNAUTHORIZED;
    let text = "gitgate-upstream: this Git server needs its credential\n";
    write_log(
        server,
        exchange.finish(status.as_u16(), pump, text.len() as u64, Outcome::Complete),
    );
    let mut response = plain(status, text);
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"gitgate-upstream\""),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}

fn write_log(server: &Server, entry: UpstreamRequest) {
    let Some(log) = &server.log else { return };
    let mut line = match serde_json::to_vec(&entry) {
        Ok(line) => line,
        Err(err) => {
            eprintln!("gitgate-upstream: cannot encode log line: {err}");
            return;
        }
    };
    line.push(b'\n');
    // A poisoned lock only means another request panicked mid-write; the file is still usable.
    let mut file = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Err(err) = file.write_all(&line) {
        eprintln!("gitgate-upstream: cannot write log line: {err}");
    }
}

// ---- recorded responses and test hooks ------------------------------------------------------

/// Path prefix of recorded responses: `GET /_recorded/<name>` serves
/// `<root>/_recorded/<name>.json`, a response recorded in nock's format (as `@octokit/fixtures`
/// ships them: `status`, `headers`, `response`, `responseIsBinary`). With `?chunk=<n>` the body
/// is written `n` bytes at a time, each a frame of its own sent after a pause (`pause_ms`,
/// default 5), and without `content-length`; otherwise in one piece with it.
const RECORDED_PREFIX: &str = "/_recorded/";

/// The directory below the root that holds recorded responses.
const RECORDED_DIR: &str = "_recorded";

/// The file in a bare repository that, when present, is git's global configuration for every
/// request to that repository (git honours `uploadpack.packObjectsHook` only from there).
const REPOSITORY_GLOBAL_CONFIG: &str = "gitgate-upstream.gitconfig";

/// Headers of a recording that describe the recorded connection, not the body served now.
const NOT_REPLAYED: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// One recorded response.
#[derive(Debug, serde::Deserialize)]
struct Recorded {
    status: u16,
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    response: serde_json::Value,
    /// The response is a hex string of the body's bytes.
    #[serde(default, rename = "responseIsBinary")]
    binary: bool,
}

/// The global configuration file `repository_global_config` names for a request path: the
/// bare repository is the path's leading segments up to the first one ending in `.git`.
fn repository_global_config(root: &Path, path: &str) -> Option<PathBuf> {
    let mut dir = root.to_owned();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return None;
        }
        dir.push(segment);
        if segment.ends_with(".git") {
            let file = dir.join(REPOSITORY_GLOBAL_CONFIG);
            return file.is_file().then_some(file);
        }
    }
    None
}

/// Serves a recorded response by name, with its recorded status and headers.
fn serve_recorded(
    server: &Server,
    exchange: Exchange,
    pump: Pumped,
    name: &str,
) -> Response<ResponseBody> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    let file = server.root.join(RECORDED_DIR).join(format!("{name}.json"));
    let recorded = valid
        .then(|| std::fs::read(&file).ok())
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<Recorded>(&bytes).ok());
    let Some(recorded) = recorded else {
        let text = "gitgate-upstream: no such recorded response\n";
        write_log(
            server,
            exchange.finish(404, pump, text.len() as u64, Outcome::Complete),
        );
        return plain(StatusCode::NOT_FOUND, text);
    };
    let body = match &recorded.response {
        serde_json::Value::String(text) if recorded.binary => hex::decode(text).unwrap_or_default(),
        serde_json::Value::String(text) => text.as_bytes().to_vec(),
        serde_json::Value::Null => Vec::new(),
        value => serde_json::to_vec(value).unwrap_or_default(),
    };
    let query: Vec<(String, String)> = exchange
        .query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let param = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let chunk = param("chunk").filter(|&n| n > 0);
    let pause = Duration::from_millis(param("pause_ms").unwrap_or(5));

    let status = StatusCode::from_u16(recorded.status).unwrap_or(StatusCode::OK);
    let mut response = Response::builder().status(status);
    for (name, value) in &recorded.headers {
        if NOT_REPLAYED.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        let Some(value) = value.as_str() else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response = response.header(name, value);
        }
    }
    let len = body.len() as u64;
    write_log(
        server,
        exchange.finish(status.as_u16(), pump, len, Outcome::Complete),
    );
    let built = match chunk {
        None => response.body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed()),
        Some(size) => {
            let (mut sender, channel) = Channel::<Bytes, std::io::Error>::new(BODY_QUEUE);
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            tokio::spawn(async move {
                for piece in body.chunks(size) {
                    if sender
                        .send(Frame::data(Bytes::copy_from_slice(piece)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    // A pause per frame, so that each one reaches the proxy as a chunk of its own.
                    tokio::time::sleep(pause).await;
                }
            });
            response.body(channel.boxed())
        }
    };
    built.unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad recording\n"))
}
