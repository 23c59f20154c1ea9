//! The approval service's token in the VM: read once from the environment in `on_configure`,
//! then added to every callout's headers.
//!
//! The variable reaches the VM through `vm_config.environment_variables.host_env_keys`, which
//! proxy-wasm hands to the module as its WASI environment, so `std::env::var` reads it. The
//! value is never logged; only the variable's name and whether it was set.

use gitgate_core::service_token::{self, HEADER, Resolved, ServiceToken, TokenSection};
use log::{info, warn};

/// Reads the token the section names; an error is a configuration failure (the plugin does not
/// start), and its text names the variable, never the value.
pub fn load(section: &TokenSection) -> Result<Option<ServiceToken>, String> {
    let value = std::env::var(&section.env).ok();
    match service_token::resolve(section, value.as_deref()).map_err(|e| e.to_string())? {
        Resolved::Token(token) => {
            info!("approval service token read from {}", section.env);
            Ok(Some(token))
        }
        Resolved::Missing { warning } => {
            warn!("{warning}");
            Ok(None)
        }
    }
}

/// `headers` with the token's header added, when there is a token.
pub fn add_header<'a>(
    mut headers: Vec<(&'a str, &'a str)>,
    token: Option<&'a ServiceToken>,
) -> Vec<(&'a str, &'a str)> {
    if let Some(token) = token {
        headers.push((HEADER, token.expose()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_added_only_with_a_token() {
        let base = vec![(":method", "POST")];
        assert_eq!(add_header(base.clone(), None), base);
        let token = ServiceToken::new("0123456789abcdef0123456789abcdef").expect("valid");
        let headers = add_header(base, Some(&token));
        assert_eq!(headers.last(), Some(&(HEADER, token.expose())));
    }
}
