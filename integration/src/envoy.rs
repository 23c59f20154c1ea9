//! The shipped Envoy configuration, made runnable on other ports and paths.
//!
//! The tests run `envoy/gitgate-local.yaml` itself: the harness only swaps the demo's ports and
//! the two relative file paths for its own. Every swapped text must be present in the template,
//! so a change to the shipped file that the harness does not understand fails loudly instead of
//! testing something else.

use std::path::Path;

use crate::error::{HarnessError, Result};
use crate::stack::Ports;

/// The shipped configuration of the local stack, relative to the workspace root.
pub const LOCAL_CONFIG: &str = "envoy/gitgate-local.yaml";

/// The filter module path as written in the shipped configuration (relative to Envoy's working
/// directory, the workspace root, in the demo).
pub const WASM_PATH: &str = "target/wasm32-wasip1/release/gitgate_filter.wasm";

/// The dev issuer's key set as written in the shipped configuration.
pub const JWKS_PATH: &str = ".gitgate/dev/jwks.json";

/// Turns the shipped configuration into one for `ports`, with absolute paths for the filter
/// module and the key set.
pub fn render(template: &str, ports: &Ports, wasm: &Path, jwks: &Path) -> Result<String> {
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
        (WASM_PATH.to_owned(), wasm.display().to_string()),
        (JWKS_PATH.to_owned(), jwks.display().to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::workspace_root;

    fn shipped() -> String {
        std::fs::read_to_string(workspace_root().join(LOCAL_CONFIG)).unwrap()
    }

    #[test]
    fn the_shipped_config_has_every_placeholder_the_harness_swaps() {
        let ports = Ports {
            gateway: 18080,
            service: 18090,
            upstream: 18091,
            admin: 19901,
        };
        let out = render(
            &shipped(),
            &ports,
            Path::new("/m.wasm"),
            Path::new("/k.json"),
        )
        .unwrap();
        for demo in ["8080", "8090", "8091", "9901"] {
            assert!(
                !out.contains(&format!("port_value: {demo}\n")),
                "{demo} left in"
            );
        }
        assert!(out.contains("port_value: 18080"));
        assert!(out.contains("filename: /m.wasm"));
        assert!(out.contains("/k.json"));
        assert!(!out.contains(WASM_PATH));
    }

    #[test]
    fn ports_that_equal_other_demo_ports_are_not_swapped_twice() {
        let template = format!(
            "a port_value: 8080\nb port_value: 8090\nc port_value: 8091\n\
                                d port_value: 9901\n{WASM_PATH}\n{JWKS_PATH}\n"
        );
        let ports = Ports {
            gateway: 8090,
            service: 8091,
            upstream: 9901,
            admin: 8080,
        };
        let out = render(&template, &ports, Path::new("/w"), Path::new("/j")).unwrap();
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
        let err = render("nothing here", &ports, Path::new("/w"), Path::new("/j")).unwrap_err();
        assert!(matches!(err, HarnessError::Template { .. }), "{err}");
    }
}
