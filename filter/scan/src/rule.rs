//! What a rule is: the static description of one kind of credential.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The family a credential belongs to, used for reporting and for per-family corpus figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Cloud providers: AWS, Google Cloud, Azure, Alibaba, DigitalOcean, Heroku.
    Cloud,
    /// Source hosts: GitHub, GitLab, Atlassian.
    SourceHost,
    /// Chat and messaging: Slack, Discord, Telegram, Microsoft Teams, Twilio.
    Chat,
    /// Mail delivery: SendGrid, Mailgun, Mailchimp, Brevo.
    Mail,
    /// Payments and commerce: Stripe, Square, Braintree, Shopify.
    Payments,
    /// Package registries: npm, PyPI, RubyGems, crates.io, NuGet, Docker Hub, Artifactory.
    PackageRegistry,
    /// AI APIs: OpenAI, Anthropic, Hugging Face, Groq, Replicate.
    Ai,
    /// Infrastructure services: Vault, Databricks, Terraform Cloud, Pulumi, Doppler, Grafana,
    /// New Relic, Sentry.
    Infrastructure,
    /// Private key material: PEM blocks, OpenSSH, PGP, PuTTY and age keys.
    PrivateKey,
    /// JSON Web Tokens.
    Jwt,
    /// Database and message broker connection strings with a password.
    Database,
    /// Credentials carried by HTTP: user:password in URLs, Basic and Bearer headers.
    HttpCredentials,
    /// Secrets assigned to suggestively named keys in code and configuration files.
    Generic,
    /// Rules added by configuration.
    Custom,
}

impl Family {
    /// Every family, in reporting order.
    pub const ALL: [Family; 14] = [
        Family::Cloud,
        Family::SourceHost,
        Family::Chat,
        Family::Mail,
        Family::Payments,
        Family::PackageRegistry,
        Family::Ai,
        Family::Infrastructure,
        Family::PrivateKey,
        Family::Jwt,
        Family::Database,
        Family::HttpCredentials,
        Family::Generic,
        Family::Custom,
    ];

    /// The kebab-case name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Cloud => "cloud",
            Family::SourceHost => "source-host",
            Family::Chat => "chat",
            Family::Mail => "mail",
            Family::Payments => "payments",
            Family::PackageRegistry => "package-registry",
            Family::Ai => "ai",
            Family::Infrastructure => "infrastructure",
            Family::PrivateKey => "private-key",
            Family::Jwt => "jwt",
            Family::Database => "database",
            Family::HttpCredentials => "http-credentials",
            Family::Generic => "generic",
            Family::Custom => "custom",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A structural check run on a regex match before it becomes a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validation {
    /// GitHub-style tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `npm_`): the last six
    /// characters are the base62 CRC32 of the thirty before them.
    GithubChecksum,
    /// JWT: header and payload base64url-decode to JSON objects and the header names an `alg`.
    Jwt,
    /// PEM: BEGIN and END labels agree and the body decodes as base64 to a plausible key.
    Pem,
    /// HTTP Basic: the credential base64-decodes to printable `user:password`.
    BasicAuth,
    /// The match begins inside a key that starts its line: only name bytes, an optional
    /// `export `, and indentation stand between the line start and the match. Lets a rule
    /// anchor its regex at the keyword yet only take `KEY=value` lines.
    KeyAtLineStart,
}

impl Validation {
    /// How many bytes before a match the check reads; the scanner keeps that many more.
    pub const fn lookbehind(self) -> usize {
        match self {
            Validation::KeyAtLineStart => crate::validate::KEY_LOOKBEHIND,
            _ => 0,
        }
    }
}

/// Which of the built-in allowlist checks apply to a rule's secret value.
///
/// A set of bits; rules whose real values look like one of the dropped shapes (a Heroku API key
/// is a UUID, a Twilio auth token is 32 hex digits) leave that check out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AllowKinds(u16);

impl AllowKinds {
    /// Values documented by vendors as examples (`AKIAIOSFODNN7EXAMPLE`, the jwt.io token).
    pub const EXAMPLES: AllowKinds = AllowKinds(1 << 0);
    /// Placeholders: `xxxx`, `****`, `changeme`, `<token>`, `your-key-here`, `dummy`, `test`.
    pub const PLACEHOLDERS: AllowKinds = AllowKinds(1 << 1);
    /// Templated values: `${X}`, `{{ x }}`, `%(x)s`, `process.env.X`, `os.environ[...]`, `$VAR`.
    pub const TEMPLATES: AllowKinds = AllowKinds(1 << 2);
    /// Hex strings of exactly the length of an MD5, SHA-1 (and git object id), SHA-256 or
    /// SHA-512 digest.
    pub const HASHES: AllowKinds = AllowKinds(1 << 3);
    /// UUIDs.
    pub const UUIDS: AllowKinds = AllowKinds(1 << 4);
    /// Values that read as code rather than data: dotted identifiers, single-case words, paths
    /// and URLs. Only for rules that key on a variable name, never on a token format.
    pub const CODE_LIKE: AllowKinds = AllowKinds(1 << 5);
    /// Values that call themselves a password or secret (`my-secret-password`). Only for rules
    /// keyed on names or URLs: token formats may carry the word (`AGE-SECRET-KEY-1`).
    pub const SELF_NAMED: AllowKinds = AllowKinds(1 << 6);

    /// No built-in allowlist check.
    pub const NONE: AllowKinds = AllowKinds(0);
    /// The checks every token-format rule gets.
    pub const STANDARD: AllowKinds = AllowKinds(
        Self::EXAMPLES.0
            | Self::PLACEHOLDERS.0
            | Self::TEMPLATES.0
            | Self::HASHES.0
            | Self::UUIDS.0,
    );
    /// The checks a rule keyed on a variable name gets.
    pub const GENERIC: AllowKinds =
        AllowKinds(Self::STANDARD.0 | Self::CODE_LIKE.0 | Self::SELF_NAMED.0);

    /// Whether every check in `other` is in `self`.
    pub const fn contains(self, other: AllowKinds) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` without the checks in `other`.
    pub const fn without(self, other: AllowKinds) -> AllowKinds {
        AllowKinds(self.0 & !other.0)
    }
}

/// The static description of a built-in rule.
///
/// Patterns are compiled with Unicode off, so `\b`, `\s`, `\w`, `\d` and `(?i)` are their ASCII
/// forms, and `.` matches any byte but `\n`. A match must overlap one of the rule's keywords: the
/// keyword pass finds candidates and the regex runs only on a window around each hit.
#[derive(Clone, Copy, Debug)]
pub struct RuleSpec {
    /// Stable id, lower-case words joined by `-`, e.g. `github-pat-classic`.
    pub id: &'static str,
    /// The family reported with findings.
    pub family: Family,
    /// One sentence a person reads in a refusal.
    pub description: &'static str,
    /// Literal keywords for the prefilter; at least one, each 2 to 64 bytes.
    pub keywords: &'static [&'static str],
    /// Whether keywords must match byte for byte (token prefixes) rather than ASCII
    /// case-insensitively (variable names).
    pub keywords_case_sensitive: bool,
    /// The regex; see the type's note on syntax.
    pub pattern: &'static str,
    /// The capture group holding the secret value (0 is the whole match).
    pub secret_group: usize,
    /// Minimum Shannon entropy of the secret, in bits per byte.
    pub entropy: Option<f64>,
    /// An extra structural check.
    pub validation: Option<Validation>,
    /// The most bytes a match may start before the keyword's first byte.
    pub max_prefix: usize,
    /// The longest match, in bytes; the streaming carry is sized from it.
    pub max_len: usize,
    /// A generic rule's finding is dropped when a specific rule's finding overlaps its secret.
    pub generic: bool,
    /// The built-in allowlist checks applied to the secret.
    pub allow: AllowKinds,
}

impl RuleSpec {
    /// A rule for a prefixed token: case-sensitive keywords at the start of the match, a
    /// 128-byte cap and the standard allowlist. The builder methods below adjust it.
    pub const fn token(
        id: &'static str,
        family: Family,
        description: &'static str,
        keywords: &'static [&'static str],
        pattern: &'static str,
    ) -> RuleSpec {
        RuleSpec {
            id,
            family,
            description,
            keywords,
            keywords_case_sensitive: true,
            pattern,
            secret_group: 1,
            entropy: None,
            validation: None,
            max_prefix: 0,
            max_len: 128,
            generic: false,
            allow: AllowKinds::STANDARD,
        }
    }

    /// A rule keyed on a variable name: ASCII case-insensitive keywords.
    pub const fn keyed(
        id: &'static str,
        family: Family,
        description: &'static str,
        keywords: &'static [&'static str],
        pattern: &'static str,
    ) -> RuleSpec {
        let mut spec = RuleSpec::token(id, family, description, keywords, pattern);
        spec.keywords_case_sensitive = false;
        spec
    }

    /// Sets the longest match.
    pub const fn max_len(mut self, max_len: usize) -> RuleSpec {
        self.max_len = max_len;
        self
    }

    /// Sets how far before the keyword a match may start.
    pub const fn max_prefix(mut self, max_prefix: usize) -> RuleSpec {
        self.max_prefix = max_prefix;
        self
    }

    /// Sets the entropy floor.
    pub const fn entropy(mut self, bits: f64) -> RuleSpec {
        self.entropy = Some(bits);
        self
    }

    /// Sets the structural check.
    pub const fn validate(mut self, validation: Validation) -> RuleSpec {
        self.validation = Some(validation);
        self
    }

    /// Sets the secret group.
    pub const fn group(mut self, group: usize) -> RuleSpec {
        self.secret_group = group;
        self
    }

    /// Marks the rule generic (it yields to specific rules) with the generic allowlist.
    pub const fn generic(mut self) -> RuleSpec {
        self.generic = true;
        self.allow = AllowKinds::GENERIC;
        self
    }

    /// Replaces the built-in allowlist checks.
    pub const fn allow(mut self, allow: AllowKinds) -> RuleSpec {
        self.allow = allow;
        self
    }
}
