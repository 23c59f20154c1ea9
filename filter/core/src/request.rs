//! Which Git smart-HTTP request an HTTP request is, and for which repository.
//!
//! Endpoints (git-smart-http.md §2): `GET $repo/info/refs?service=...`, `POST
//! $repo/git-upload-pack`, `POST $repo/git-receive-pack`. The path is percent-decoded and
//! normalized (dot segments resolved, repeated slashes collapsed) before it is matched, because
//! the upstream (a CGI `git http-backend` sees a decoded `PATH_INFO`) resolves
//! `/demo.git/git-receive-p%61ck` or `//demo.git/./git-receive-pack` to the same endpoint; a
//! gate that matched raw paths could be walked around.
//!
//! The receive-pack endpoint is recognised whatever the method and content type: a lax upstream
//! might accept a push without them, so the gate inspects every such request.

use thiserror::Error;

/// The Git service named by an `info/refs?service=` query or an RPC path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `git-upload-pack` (fetch, clone).
    UploadPack,
    /// `git-receive-pack` (push).
    ReceivePack,
}

/// The kind of request, with the repository path relative to the configured prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRequest {
    /// Ref discovery; `service` is `None` for a dumb-protocol `info/refs`.
    InfoRefs {
        /// The repository, e.g. `org/app.git`.
        repository: String,
        /// The service asked for, if any.
        service: Option<Service>,
    },
    /// A fetch RPC.
    UploadPack {
        /// The repository.
        repository: String,
    },
    /// A push RPC: the only kind the gate inspects.
    ReceivePack {
        /// The repository.
        repository: String,
    },
    /// Anything else: passed through untouched.
    NotGit,
}

/// A path that cannot be normalized, which the gate refuses rather than guess about.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// A `%` not followed by two hex digits.
    #[error("bad percent-encoding at byte {offset} of the path")]
    BadPercentEncoding {
        /// Offset in the path.
        offset: usize,
    },
    /// A decoded NUL, or bytes that are not UTF-8.
    #[error("path does not decode to UTF-8 text")]
    NotText,
    /// `..` above the root.
    #[error("path climbs above the root")]
    AboveRoot,
}

/// The RPC endpoint names (git-smart-http.md §2).
const INFO_REFS: &str = "info/refs";
const UPLOAD_PACK: &str = "git-upload-pack";
const RECEIVE_PACK: &str = "git-receive-pack";

/// Classifies a request given its method, its `:path` (query included) and the configured
/// prefix (normalized by [`normalize_prefix`]).
pub fn classify(method: &str, path: &str, prefix: &str) -> Result<GitRequest, RequestError> {
    let (raw_path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let raw_path = raw_path.split('#').next().unwrap_or_default();
    let normalized = normalize_path(raw_path)?;
    let Some(relative) = normalized.strip_prefix(prefix) else {
        return Ok(GitRequest::NotGit);
    };
    let relative = relative.trim_end_matches('/');

    if let Some(repository) = repository_before(relative, RECEIVE_PACK) {
        return Ok(GitRequest::ReceivePack { repository });
    }
    if let Some(repository) = repository_before(relative, UPLOAD_PACK) {
        if method.eq_ignore_ascii_case("POST") {
            return Ok(GitRequest::UploadPack { repository });
        }
        return Ok(GitRequest::NotGit);
    }
    if let Some(repository) = repository_before(relative, INFO_REFS) {
        let service = query.and_then(service_from_query);
        return Ok(GitRequest::InfoRefs {
            repository,
            service,
        });
    }
    Ok(GitRequest::NotGit)
}

/// The repository part of `relative` when it ends with `/<endpoint>`.
fn repository_before(relative: &str, endpoint: &str) -> Option<String> {
    let repository = relative.strip_suffix(endpoint)?.strip_suffix('/')?;
    (!repository.is_empty()).then(|| repository.to_owned())
}

fn service_from_query(query: &str) -> Option<Service> {
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some(("service", "git-upload-pack")) => Some(Service::UploadPack),
            Some(("service", "git-receive-pack")) => Some(Service::ReceivePack),
            _ => None,
        })
}

/// Normalizes a configured prefix: leading and trailing `/`, no dot segments. `""` and `"/"`
/// both mean the root.
pub fn normalize_prefix(prefix: &str) -> Result<String, RequestError> {
    let mut normalized = normalize_path(prefix)?;
    if !normalized.ends_with('/') {
        normalized.push('/');
    }
    Ok(normalized)
}

/// Percent-decodes `path`, collapses repeated `/`, and resolves `.` and `..` segments.
/// The result starts with `/`; a trailing `/` is kept.
pub fn normalize_path(path: &str) -> Result<String, RequestError> {
    let decoded = percent_decode(path)?;
    let trailing_slash = decoded.ends_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(RequestError::AboveRoot);
                }
            }
            s => segments.push(s),
        }
    }
    let mut normalized = String::with_capacity(decoded.len() + 1);
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        normalized.push('/');
    }
    Ok(normalized)
}

fn percent_decode(path: &str) -> Result<String, RequestError> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let value = hex
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(RequestError::BadPercentEncoding { offset: index })?;
            out.push(value);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    if out.contains(&0) {
        return Err(RequestError::NotText);
    }
    String::from_utf8(out).map_err(|_| RequestError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(repository: &str) -> GitRequest {
        GitRequest::ReceivePack {
            repository: repository.into(),
        }
    }

    #[test]
    fn a_push_rpc_names_its_repository() {
        assert_eq!(
            classify("POST", "/demo.git/git-receive-pack", "/"),
            Ok(receive("demo.git"))
        );
        assert_eq!(
            classify("POST", "/org/app.git/git-receive-pack", "/"),
            Ok(receive("org/app.git"))
        );
    }

    #[test]
    fn discovery_reads_the_service_from_the_query() {
        assert_eq!(
            classify(
                "GET",
                "/org/app.git/info/refs?service=git-receive-pack",
                "/"
            ),
            Ok(GitRequest::InfoRefs {
                repository: "org/app.git".into(),
                service: Some(Service::ReceivePack)
            })
        );
        assert_eq!(
            classify("GET", "/demo.git/info/refs", "/"),
            Ok(GitRequest::InfoRefs {
                repository: "demo.git".into(),
                service: None
            })
        );
    }

    #[test]
    fn a_fetch_rpc_is_upload_pack() {
        assert_eq!(
            classify("POST", "/demo.git/git-upload-pack", "/"),
            Ok(GitRequest::UploadPack {
                repository: "demo.git".into()
            })
        );
    }

    #[test]
    fn the_prefix_is_stripped() {
        let prefix = normalize_prefix("/git").expect("valid");
        assert_eq!(prefix, "/git/");
        assert_eq!(
            classify("POST", "/git/org/app.git/git-receive-pack", &prefix),
            Ok(receive("org/app.git"))
        );
        assert_eq!(
            classify("POST", "/other/app.git/git-receive-pack", &prefix),
            Ok(GitRequest::NotGit)
        );
    }

    #[test]
    fn encoded_and_dotted_paths_are_normalized_before_matching() {
        assert_eq!(
            classify("POST", "/demo.git/git-receive-p%61ck", "/"),
            Ok(receive("demo.git"))
        );
        assert_eq!(
            classify("POST", "//x/../demo.git/./git-receive-pack/", "/"),
            Ok(receive("demo.git"))
        );
        assert_eq!(
            classify("POST", "/org%2Fapp.git/git-receive-pack", "/"),
            Ok(receive("org/app.git"))
        );
    }

    #[test]
    fn a_push_endpoint_is_recognised_whatever_the_method_or_query() {
        assert_eq!(
            classify("PUT", "/demo.git/git-receive-pack?x=1", "/"),
            Ok(receive("demo.git"))
        );
    }

    #[test]
    fn other_paths_are_not_git() {
        assert_eq!(classify("GET", "/", "/"), Ok(GitRequest::NotGit));
        assert_eq!(
            classify("GET", "/git-receive-pack", "/"),
            Ok(GitRequest::NotGit)
        );
        assert_eq!(
            classify("GET", "/demo.git/HEAD", "/"),
            Ok(GitRequest::NotGit)
        );
        assert_eq!(
            classify("GET", "/demo.git/git-upload-pack", "/"),
            Ok(GitRequest::NotGit)
        );
    }

    #[test]
    fn broken_paths_are_errors() {
        assert_eq!(
            classify("POST", "/demo.git/%zz", "/"),
            Err(RequestError::BadPercentEncoding { offset: 10 })
        );
        assert_eq!(classify("POST", "/a%00b", "/"), Err(RequestError::NotText));
        assert_eq!(classify("POST", "/a%ff", "/"), Err(RequestError::NotText));
        assert_eq!(classify("POST", "/../x", "/"), Err(RequestError::AboveRoot));
        assert_eq!(
            classify("POST", "/x%", "/"),
            Err(RequestError::BadPercentEncoding { offset: 2 })
        );
    }
}
