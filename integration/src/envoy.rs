//! The shipped Envoy configuration, made runnable on other ports and paths.
//!
//! The tests run `envoy/gitgate-local.yaml` itself: the harness only swaps the demo's ports and
//! the three relative file paths for its own. Every swapped text must be present in the
//! template, so a change to the shipped file that the harness does not understand fails loudly
//! instead of testing something else. With a real OpenID provider ([`remote_jwks_edits`]) the
//! dev issuer's `local_jwks` block is swapped for a `remote_jwks` one the same way.
//!
//! The Git server's credential that Envoy injects is written here too ([`write_git_credential`]):
//! the value in a file of its own, and a file-based SDS resource naming that file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{HarnessError, Result};
use crate::stack::Ports;

/// The shipped configuration of the local stack, relative to the workspace root.
pub const LOCAL_CONFIG: &str = "envoy/gitgate-local.yaml";

/// The filter module path as written in the shipped configuration (relative to Envoy's working
/// directory, the workspace root, in the demo).
pub const WASM_PATH: &str = "target/wasm32-wasip1/release/gitgate_filter.wasm";

/// The dev issuer's key set as written in the shipped configuration.
pub const JWKS_PATH: &str = ".gitgate/dev/jwks.json";

/// The SDS file of the Git server's credential as written in the shipped configuration.
pub const CREDENTIAL_SDS_PATH: &str = ".gitgate/git-credential.sds.yaml";

/// The file holding the Git server's credential itself, next to the SDS file.
pub const CREDENTIAL_FILE: &str = "git-credential";

/// The name of the SDS secret in the shipped configuration (`credential.name`).
pub const CREDENTIAL_SECRET_NAME: &str = "git_server_credential";

/// The user name of the Basic credential the gateway sends to the Git server.
pub const CREDENTIAL_USER: &str = "gitgate-gateway";

/// The files a rendered configuration points to.
#[derive(Debug, Clone, Copy)]
pub struct Files<'a> {
    /// The filter module.
    pub wasm: &'a Path,
    /// The dev issuer's key set.
    pub jwks: &'a Path,
    /// The SDS file of the Git server's credential ([`write_git_credential`]).
    pub credential_sds: &'a Path,
}

/// Turns the shipped configuration into one for `ports`, with absolute paths for the filter
/// module, the key set and the credential's SDS file.
pub fn render(template: &str, ports: &Ports, files: &Files<'_>) -> Result<String> {
    let demo = Ports::DEMO;
    let swaps = [
        (
            format!("port_value: {}", demo.gateway),
            format!("port_value: {}", ports.gateway),
        ),
        (
            format!("port_value: {}", demo.service),
            format!("port_value: {}", ports.service),
        ),
        (
            format!("port_value: {}", demo.upstream),
            format!("port_value: {}", ports.upstream),
        ),
        (
            format!("port_value: {}", demo.admin),
            format!("port_value: {}", ports.admin),
        ),
        (WASM_PATH.to_owned(), files.wasm.display().to_string()),
        (JWKS_PATH.to_owned(), files.jwks.display().to_string()),
        (
            CREDENTIAL_SDS_PATH.to_owned(),
            files.credential_sds.display().to_string(),
        ),
    ];
    for (from, _) in &swaps {
        if !template.contains(from.as_str()) {
            return Err(HarnessError::Template {
                placeholder: from.clone(),
            });
        }
    }
    // One pass over the template, so a new port that happens to equal another demo port is not
    // replaced a second time.
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'scan: while let Some(c) = rest.chars().next() {
        for (from, to) in &swaps {
            if let Some(after) = rest.strip_prefix(from.as_str()) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// Applies test-specific edits (exact text replacements) to a rendered configuration; each
/// `from` must be present.
pub fn edit(config: &str, edits: &[(String, String)]) -> Result<String> {
    let mut text = config.to_owned();
    for (from, to) in edits {
        if !text.contains(from.as_str()) {
            return Err(HarnessError::Template {
                placeholder: from.clone(),
            });
        }
        text = text.replace(from.as_str(), to);
    }
    Ok(text)
}

/// The dev issuer's key source as the shipped configuration writes it; [`remote_jwks_edits`]
/// replaces exactly this text.
const LOCAL_JWKS_BLOCK: &str = "                  issuer: gitgate-dev
                  audiences: [gitgate]";

/// Where the shipped configuration names the dev issuer's key file (after [`render`]).
const LOCAL_JWKS_FILE_LINE: &str = "                  local_jwks:\n                    filename: ";

/// The cluster list of the shipped configuration, to which the provider's cluster is added.
const CLUSTERS_LINE: &str = "\n  clusters:\n";

/// The Envoy cluster through which jwt_authn fetches the provider's key set.
pub const OIDC_CLUSTER: &str = "gitgate_oidc";

/// A real OpenID provider in place of the dev issuer, for [`edit`] on a rendered configuration.
#[derive(Debug, Clone)]
pub struct RemoteJwks {
    /// The provider's issuer URL, as its tokens' `iss` says.
    pub issuer: String,
    /// The audience its tokens carry for the gateway.
    pub audience: String,
    /// Its key set's URL (`jwks_uri` of its discovery document).
    pub jwks_uri: String,
    /// The port of the provider on 127.0.0.1.
    pub port: u16,
    /// How long jwt_authn keeps the key set before fetching it again.
    pub cache_duration: Duration,
}

/// Edits that make jwt_authn check tokens against `provider` with `remote_jwks` (fetched over
/// HTTP through a cluster of its own) instead of the dev issuer's `local_jwks` file. The
/// rendered dev key-set path is needed to find the `local_jwks` lines.
///
/// jwt_authn keeps a fetched key set for `cache_duration` and does not fetch it again for a
/// token whose `kid` it does not know (envoyproxy/envoy#39643); a key added at the provider is
/// therefore accepted only once the cached set has expired and the next request fetched it.
pub fn remote_jwks_edits(provider: &RemoteJwks, rendered_jwks: &Path) -> Vec<(String, String)> {
    let seconds = provider.cache_duration.as_secs().max(1);
    let issuer = [
        format!("                  issuer: {}", provider.issuer),
        format!("                  audiences: [{}]", provider.audience),
    ];
    let remote = [
        "                  remote_jwks:".to_owned(),
        "                    http_uri:".to_owned(),
        format!("                      uri: {}", provider.jwks_uri),
        format!("                      cluster: {OIDC_CLUSTER}"),
        "                      timeout: 5s".to_owned(),
        format!("                    cache_duration: {seconds}s"),
    ];
    let cluster = [
        "  # The OpenID provider of the tests: jwt_authn fetches its key set here.".to_owned(),
        format!("  - name: {OIDC_CLUSTER}"),
        "    type: STATIC".to_owned(),
        "    connect_timeout: 2s".to_owned(),
        "    load_assignment:".to_owned(),
        format!("      cluster_name: {OIDC_CLUSTER}"),
        "      endpoints:".to_owned(),
        "      - lb_endpoints:".to_owned(),
        "        - endpoint:".to_owned(),
        "            address:".to_owned(),
        format!(
            "              socket_address: {{ address: 127.0.0.1, port_value: {} }}",
            provider.port
        ),
    ];
    vec![
        (LOCAL_JWKS_BLOCK.to_owned(), issuer.join("\n")),
        (
            format!("{LOCAL_JWKS_FILE_LINE}{}\n", rendered_jwks.display()),
            format!("{}\n", remote.join("\n")),
        ),
        (
            CLUSTERS_LINE.to_owned(),
            format!("{CLUSTERS_LINE}{}\n", cluster.join("\n")),
        ),
    ]
}

/// The Git server's credential the gateway injects: where it is kept, and the header value.
#[derive(Clone)]
pub struct GitCredential {
    /// The file holding the header value (mode 0600), read by Envoy and by the test upstream.
    pub file: PathBuf,
    /// The SDS file that names [`GitCredential::file`], for the shipped configuration.
    pub sds: PathBuf,
    /// The `Authorization` value, `Basic <base64 user:password>`.
    header: String,
    /// The password alone, for a URL's user information.
    password: String,
}

impl std::fmt::Debug for GitCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value: a Debug print can end up in a test's failure output.
        f.debug_struct("GitCredential")
            .field("file", &self.file)
            .field("sds", &self.sds)
            .finish_non_exhaustive()
    }
}

impl GitCredential {
    /// The `Authorization` header value the Git server wants.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// `user:password` for an `http://user:password@host/` URL, which git answers a Basic
    /// challenge with.
    pub fn userinfo(&self) -> String {
        format!("{CREDENTIAL_USER}:{}", self.password)
    }
}

/// Writes the Git server's credential into `dir`: a fresh random password in
/// [`CREDENTIAL_FILE`] (kept if the file is there already, so a reused state directory keeps
/// its credential) and the SDS file for Envoy next to it, named after
/// [`CREDENTIAL_SDS_PATH`]'s file name.
pub fn write_git_credential(dir: &Path) -> Result<GitCredential> {
    let file = dir.join(CREDENTIAL_FILE);
    let sds = dir.join(
        Path::new(CREDENTIAL_SDS_PATH)
            .file_name()
            .unwrap_or_default(),
    );
    let password = match std::fs::read_to_string(&file) {
        Ok(text) => password_of(&text).ok_or_else(|| {
            HarnessError::Unexpected(format!(
                "{} holds no Basic credential of {CREDENTIAL_USER}",
                file.display()
            ))
        })?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let password = random_password()?;
            let header = basic_header(&password);
            write_private(&file, format!("{header}\n").as_bytes())?;
            password
        }
        Err(err) => return Err(HarnessError::io("read", &file, err)),
    };
    // A DiscoveryResponse in YAML, as file-based SDS reads it; the value stays in its own file.
    let resource = [
        "resources:".to_owned(),
        "- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            .to_owned(),
        format!("  name: {CREDENTIAL_SECRET_NAME}"),
        "  generic_secret:".to_owned(),
        "    secret:".to_owned(),
        format!("      filename: {}", file.display()),
        String::new(),
    ]
    .join("\n");
    std::fs::write(&sds, resource).map_err(|e| HarnessError::io("write", &sds, e))?;
    Ok(GitCredential {
        file,
        sds,
        header: basic_header(&password),
        password,
    })
}

fn basic_header(password: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{CREDENTIAL_USER}:{password}"))
    )
}

/// The password of a `Basic` header value of [`CREDENTIAL_USER`].
fn password_of(text: &str) -> Option<String> {
    let encoded = text.lines().next()?.trim_end().strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let password = decoded.strip_prefix(CREDENTIAL_USER)?.strip_prefix(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// 24 random bytes from the kernel, hex-encoded: URL-safe, so it fits a URL's user information.
pub(crate) fn random_password() -> Result<String> {
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 24];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|e| HarnessError::io("read", path, e))?;
    Ok(hex::encode(bytes))
}

/// Creates `path` readable by its owner only, and writes `bytes` to it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|e| HarnessError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::workspace_root;

    fn shipped() -> String {
        std::fs::read_to_string(workspace_root().join(LOCAL_CONFIG)).unwrap()
    }

    fn files() -> Files<'static> {
        Files {
            wasm: Path::new("/m.wasm"),
            jwks: Path::new("/k.json"),
            credential_sds: Path::new("/c.sds.yaml"),
        }
    }

    /// The configuration without its comment lines.
    fn settings(config: &str) -> String {
        config
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The names of the HTTP filters of the gateway's listener, in decode order.
    fn http_filter_names(config: &str) -> Vec<String> {
        let doc: serde_norway::Value = serde_norway::from_str(config).unwrap();
        let hcm = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0];
        hcm["typed_config"]["http_filters"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_shipped_config_has_every_placeholder_the_harness_swaps() {
        let ports = Ports {
            gateway: 18080,
            service: 18090,
            upstream: 18091,
            admin: 19901,
        };
        let out = render(&shipped(), &ports, &files()).unwrap();
        for demo in ["8080", "8090", "8091", "9901"] {
            assert!(
                !out.contains(&format!("port_value: {demo}\n")),
                "{demo} left in"
            );
        }
        assert!(out.contains("port_value: 18080"));
        assert!(out.contains("filename: /m.wasm"));
        assert!(out.contains("/k.json"));
        assert!(out.contains("path: /c.sds.yaml"));
        assert!(!out.contains(WASM_PATH));
        assert!(!out.contains(CREDENTIAL_SDS_PATH));
    }

    #[test]
    fn every_shipped_config_injects_the_credential_after_the_gate_and_strips_the_token() {
        for name in ["gitgate-local.yaml", "mesh-example.yaml"] {
            let text = std::fs::read_to_string(workspace_root().join("envoy").join(name)).unwrap();
            let names = http_filter_names(&text);
            let at = |filter: &str| {
                names
                    .iter()
                    .position(|n| n == filter)
                    .unwrap_or_else(|| panic!("{name}: no {filter} in {names:?}"))
            };
            // Decode order: the gate runs before the injector, so it never sees the Git
            // server's credential; the router comes last.
            assert!(at("envoy.filters.http.jwt_authn") < at("gitgate"), "{name}");
            assert!(
                at("gitgate") < at("envoy.filters.http.credential_injector"),
                "{name}"
            );
            assert_eq!(at("envoy.filters.http.router"), names.len() - 1, "{name}");
            // jwt_authn removes the agent's token; a route-level header removal would run in the
            // router, after the injector, and strip the injected credential instead.
            assert!(text.contains("forward: false"), "{name}");
            assert!(
                !settings(&text).contains("request_headers_to_remove"),
                "{name}"
            );
            assert!(
                text.contains("allow_request_without_credential: false"),
                "{name}"
            );
            assert!(text.contains("overwrite: true"), "{name}");
        }
    }

    #[test]
    fn every_wasm_instance_of_the_shipped_configs_lets_the_filter_token_into_the_vm() {
        // The instances share one VM (same vm_id and module), whose environment comes from
        // whichever instance creates it, so each of them must list the variable.
        for name in ["gitgate-local.yaml", "mesh-example.yaml"] {
            let text = std::fs::read_to_string(workspace_root().join("envoy").join(name)).unwrap();
            let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
            let hcm = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0];
            let filters = hcm["typed_config"]["http_filters"].as_sequence().unwrap();
            let wasm: Vec<_> = filters
                .iter()
                .filter(|f| f["typed_config"]["config"]["vm_config"].is_mapping())
                .collect();
            assert_eq!(wasm.len(), 2, "{name}");
            for filter in wasm {
                let vm = &filter["typed_config"]["config"]["vm_config"];
                let keys = vm["environment_variables"]["host_env_keys"].as_sequence();
                assert_eq!(
                    keys.map(|k| k.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>()),
                    Some(vec![crate::stack::FILTER_TOKEN_ENV]),
                    "{name}: {}",
                    filter["name"].as_str().unwrap_or_default()
                );
                assert!(
                    vm["environment_variables"]["key_values"].is_null(),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn ports_that_equal_other_demo_ports_are_not_swapped_twice() {
        let template = format!(
            "a port_value: 8080\nb port_value: 8090\nc port_value: 8091\n\
                                d port_value: 9901\n{WASM_PATH}\n{JWKS_PATH}\n{CREDENTIAL_SDS_PATH}\n"
        );
        let ports = Ports {
            gateway: 8090,
            service: 8091,
            upstream: 9901,
            admin: 8080,
        };
        let out = render(&template, &ports, &files()).unwrap();
        assert!(
            out.starts_with(
                "a port_value: 8090\nb port_value: 8091\nc port_value: 9901\n\
                                 d port_value: 8080\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_template_without_a_placeholder_is_refused() {
        let ports = Ports::DEMO;
        let err = render("nothing here", &ports, &files()).unwrap_err();
        assert!(matches!(err, HarnessError::Template { .. }), "{err}");
    }

    #[test]
    fn remote_jwks_replaces_the_dev_issuers_key_file_and_adds_its_cluster() {
        let rendered = render(&shipped(), &Ports::DEMO, &files()).unwrap();
        let provider = RemoteJwks {
            issuer: "http://127.0.0.1:4000".into(),
            audience: "gitgate".into(),
            jwks_uri: "http://127.0.0.1:4000/jwks".into(),
            port: 4000,
            cache_duration: Duration::from_secs(2),
        };
        let out = edit(&rendered, &remote_jwks_edits(&provider, files().jwks)).unwrap();
        let doc: serde_norway::Value = serde_norway::from_str(&out).unwrap();
        let hcm = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0];
        let jwt = hcm["typed_config"]["http_filters"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "envoy.filters.http.jwt_authn")
            .unwrap();
        let providers = jwt["typed_config"]["providers"].as_mapping().unwrap();
        let (_, only) = providers.iter().next().unwrap();
        assert_eq!(only["issuer"], "http://127.0.0.1:4000");
        assert_eq!(only["remote_jwks"]["http_uri"]["cluster"], OIDC_CLUSTER);
        assert_eq!(only["remote_jwks"]["cache_duration"], "2s");
        assert!(only.get("local_jwks").is_none(), "{out}");
        assert!(!settings(&out).contains("/k.json"), "{out}");
        let clusters = doc["static_resources"]["clusters"].as_sequence().unwrap();
        assert!(clusters.iter().any(|c| c["name"] == OIDC_CLUSTER), "{out}");
    }

    #[test]
    fn the_git_credential_is_basic_kept_on_reuse_and_never_debug_printed() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_git_credential(dir.path()).unwrap();
        assert!(first.header().starts_with("Basic "));
        let file = std::fs::read_to_string(&first.file).unwrap();
        assert_eq!(file.trim_end(), first.header());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        let sds = std::fs::read_to_string(&first.sds).unwrap();
        assert!(
            sds.contains(&format!("name: {CREDENTIAL_SECRET_NAME}")),
            "{sds}"
        );
        assert!(
            !sds.contains(first.header()),
            "the SDS file names the value's file only"
        );

        let again = write_git_credential(dir.path()).unwrap();
        assert_eq!(again.header(), first.header());
        let shown = format!("{again:?}");
        assert!(
            !shown.contains(&again.userinfo()[CREDENTIAL_USER.len() + 1..]),
            "{shown}"
        );
    }
}
