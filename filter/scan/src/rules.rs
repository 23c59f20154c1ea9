//! The built-in rules, written from the vendors' published token formats.
//!
//! Conventions: a token-format rule starts its pattern at its keyword (`max_prefix` 0), so its
//! window search is anchored; token bodies end at `\b` when their alphabet is alphanumeric and at
//! an explicit "next byte is not in the alphabet" otherwise, since `\b` does not see `-` or `/` as
//! part of a word. Secrets sit in capture group 1 unless a rule says otherwise. Rules whose
//! tokens carry a checksum (GitHub's CRC32) need no boundary at all: the checksum already tells
//! a token from a look-alike, and a boundary would let a letter next to the token hide it (the
//! `m` ending a terminal colour code, `x<token>` in a ref name, `<token>_prod`).

use crate::rule::{AllowKinds, Family, RuleSpec, Validation};

/// The separator between a key and its value in code and configuration: `=`, `:`, `=>`, `:=`,
/// with the key's closing quote and a little space around.
macro_rules! assign {
    () => {
        r#"["']?\s{0,4}(?:=|:|=>|:=)\s{0,4}["']?"#
    };
}

/// The suggestive words of the generic rules and up to 30 name bytes after them.
macro_rules! secret_word {
    () => {
        r"(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|auth[_-]?key|private[_-]?key|credentials?)[a-z0-9_.-]{0,30}"
    };
}

/// The keywords of the generic rules, one per suggestive word of [`secret_word!`].
const GENERIC_KEYWORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "authkey",
    "auth_key",
    "auth-key",
    "privatekey",
    "private_key",
    "private-key",
    "credential",
];

/// The cap on a PEM block, in bytes. An RSA-4096 PKCS#1 or PKCS#8 key is about 3.3 KB armoured;
/// 8 KiB leaves room for RSA-8192 (6.3 KB) and for encryption headers.
pub const PEM_MAX_LEN: usize = 8 * 1024;

/// The cap on a PGP private key block. A primary key with an encryption subkey of RSA-4096, user
/// ids and signatures armours to about 7 KB; 16 KiB covers keys with a few more subkeys.
pub const PGP_MAX_LEN: usize = 16 * 1024;

/// The cap on a JWT. Tokens with large claim sets run to a few KB; 8 KiB is beyond what common
/// proxies accept in a header.
pub const JWT_MAX_LEN: usize = 8 * 1024;

/// The body of a PEM block: base64, line breaks (real or JSON-escaped `\n`), and the
/// `Proc-Type`/`DEK-Info`/`Version` header lines of encrypted and PGP armour.
macro_rules! pem {
    ($label:literal) => {
        concat!(
            "(-----BEGIN ",
            $label,
            r"-----[A-Za-z0-9+/=\s:,.()\\-]*?-----END ",
            $label,
            "-----)"
        )
    };
}

/// Every built-in rule, in reporting order.
pub static BUILTIN_RULES: &[RuleSpec] = &[
    // ---- cloud --------------------------------------------------------------------------------
    RuleSpec::token(
        "aws-access-key-id",
        Family::Cloud,
        "AWS access key id",
        &["AKIA", "ASIA", "ABIA", "ACCA"],
        r"\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
    )
    .max_len(24),
    RuleSpec::keyed(
        "aws-secret-access-key",
        Family::Cloud,
        "AWS secret access key",
        &["secret_access_key", "secretaccesskey", "secret-access-key", "aws_secret_key"],
        concat!(
            r"(?i)(?:secret[_-]?access[_-]?key|aws_secret_key)",
            assign!(),
            r"([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"
        ),
    )
    .max_len(120)
    .entropy(4.0),
    RuleSpec::token(
        "aws-session-token",
        Family::Cloud,
        "AWS temporary session token",
        &["IQoJb3JpZ2lu", "FwoGZXIvYXdz", "FQoGZXIvYXdz"],
        r"\b((?:IQoJb3JpZ2lu|FwoGZXIvYXdz|FQoGZXIvYXdz)[A-Za-z0-9/+]{100,}={0,2})(?:[^A-Za-z0-9/+=]|$)",
    )
    .max_len(4096),
    RuleSpec::token(
        "gcp-api-key",
        Family::Cloud,
        "Google Cloud API key",
        &["AIza"],
        r"\b(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)",
    )
    .max_len(48),
    RuleSpec::keyed(
        "gcp-service-account",
        Family::Cloud,
        "Google Cloud service account key file",
        &["service_account"],
        r#""type"\s*:\s*"service_account"\s*,\s*"project_id"\s*:\s*"[a-z0-9.:-]{4,64}"\s*,\s*"private_key_id"\s*:\s*"([0-9a-f]{40})""#,
    )
    .max_prefix(16)
    .max_len(256)
    .allow(AllowKinds::STANDARD.without(AllowKinds::HASHES)),
    RuleSpec::token(
        "gcp-oauth-client-secret",
        Family::Cloud,
        "Google OAuth client secret",
        &["GOCSPX-"],
        r"\b(GOCSPX-[0-9A-Za-z_-]{28})(?:[^0-9A-Za-z_-]|$)",
    )
    .max_len(40),
    RuleSpec::keyed(
        "azure-storage-account-key",
        Family::Cloud,
        "Azure storage account key in a connection string",
        &["accountkey="],
        r"(?i)AccountKey=([A-Za-z0-9+/]{86}==)",
    )
    .max_len(104),
    RuleSpec::keyed(
        "azure-sas-token",
        Family::Cloud,
        "Azure shared access signature",
        &["sig="],
        r"(?i)\bsv=[0-9]{4}-[0-9]{2}-[0-9]{2}[A-Za-z0-9%&=:._+-]{0,320}?[?&]sig=((?:[A-Za-z0-9+/]|%2[BF]){42,43}(?:=|%3D))",
    )
    .max_prefix(352)
    .max_len(448),
    RuleSpec::token(
        "azure-ad-client-secret",
        Family::Cloud,
        "Azure AD (Entra ID) application client secret",
        &["Q~"],
        r"(?:^|[^A-Za-z0-9_~.-])([A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})(?:[^A-Za-z0-9_~.-]|$)",
    )
    .max_prefix(5)
    .max_len(48)
    .entropy(3.5),
    RuleSpec::token(
        "alibaba-access-key-id",
        Family::Cloud,
        "Alibaba Cloud AccessKey id",
        &["LTAI"],
        r"\b(LTAI[A-Za-z0-9]{12,20})\b",
    )
    .max_len(32)
    .entropy(3.0),
    RuleSpec::token(
        "digitalocean-pat",
        Family::Cloud,
        "DigitalOcean personal access token",
        &["dop_v1_"],
        r"\b(dop_v1_[a-f0-9]{64})\b",
    ),
    RuleSpec::token(
        "digitalocean-oauth-token",
        Family::Cloud,
        "DigitalOcean OAuth access token",
        &["doo_v1_"],
        r"\b(doo_v1_[a-f0-9]{64})\b",
    ),
    RuleSpec::token(
        "digitalocean-refresh-token",
        Family::Cloud,
        "DigitalOcean OAuth refresh token",
        &["dor_v1_"],
        r"\b(dor_v1_[a-f0-9]{64})\b",
    ),
    RuleSpec::keyed(
        "heroku-api-key",
        Family::Cloud,
        "Heroku API key (UUID form) next to a Heroku name",
        &["heroku"],
        concat!(
            r"(?i)heroku[a-z0-9_.-]{0,24}",
            assign!(),
            r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"
        ),
    )
    .max_len(96)
    .allow(AllowKinds::STANDARD.without(AllowKinds::UUIDS)),
    RuleSpec::token(
        "heroku-api-key-v2",
        Family::Cloud,
        "Heroku platform API token",
        &["HRKU-"],
        r"\b(HRKU-AA[0-9A-Za-z_-]{58})(?:[^0-9A-Za-z_-]|$)",
    )
    .max_len(72),
    // ---- source hosts -------------------------------------------------------------------------
    RuleSpec::token(
        "github-pat-classic",
        Family::SourceHost,
        "GitHub personal access token (classic)",
        &["ghp_"],
        r"(ghp_[A-Za-z0-9]{36})",
    )
    .validate(Validation::GithubChecksum),
    RuleSpec::token(
        "github-pat-fine-grained",
        Family::SourceHost,
        "GitHub fine-grained personal access token",
        &["github_pat_"],
        r"\b(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b",
    ),
    RuleSpec::token(
        "github-oauth-token",
        Family::SourceHost,
        "GitHub OAuth access token",
        &["gho_"],
        r"(gho_[A-Za-z0-9]{36})",
    )
    .validate(Validation::GithubChecksum),
    RuleSpec::token(
        "github-user-to-server-token",
        Family::SourceHost,
        "GitHub App user-to-server token",
        &["ghu_"],
        r"(ghu_[A-Za-z0-9]{36})",
    )
    .validate(Validation::GithubChecksum),
    RuleSpec::token(
        "github-server-to-server-token",
        Family::SourceHost,
        "GitHub App installation (server-to-server) token",
        &["ghs_"],
        r"(ghs_[A-Za-z0-9]{36})",
    )
    .validate(Validation::GithubChecksum),
    RuleSpec::token(
        "github-refresh-token",
        Family::SourceHost,
        "GitHub App refresh token",
        &["ghr_"],
        r"(ghr_[A-Za-z0-9]{36})",
    )
    .validate(Validation::GithubChecksum),
    RuleSpec::token(
        "gitlab-pat",
        Family::SourceHost,
        "GitLab personal, project or group access token",
        &["glpat-"],
        r"\b(glpat-[0-9A-Za-z_-]{20,64}(?:\.[0-9A-Za-z_-]{1,16}){0,3})(?:[^0-9A-Za-z_-]|$)",
    ),
    RuleSpec::token(
        "gitlab-pipeline-trigger-token",
        Family::SourceHost,
        "GitLab pipeline trigger token",
        &["glptt-"],
        r"\b(glptt-[0-9a-f]{40})\b",
    ),
    RuleSpec::token(
        "gitlab-runner-token",
        Family::SourceHost,
        "GitLab runner authentication token",
        &["glrt-"],
        r"\b(glrt-[0-9A-Za-z_-]{20,64}(?:\.[0-9A-Za-z_-]{1,16}){0,3})(?:[^0-9A-Za-z_-]|$)",
    ),
    RuleSpec::token(
        "gitlab-deploy-token",
        Family::SourceHost,
        "GitLab deploy token",
        &["gldt-"],
        r"\b(gldt-[0-9A-Za-z_-]{20,64})(?:[^0-9A-Za-z_-]|$)",
    ),
    RuleSpec::token(
        "gitlab-oauth-app-secret",
        Family::SourceHost,
        "GitLab OAuth application secret",
        &["gloas-"],
        r"\b(gloas-[0-9a-f]{64})\b",
    ),
    RuleSpec::token(
        "gitlab-agent-token",
        Family::SourceHost,
        "GitLab agent for Kubernetes token",
        &["glagent-"],
        r"\b(glagent-[0-9A-Za-z_-]{50,64})(?:[^0-9A-Za-z_-]|$)",
    ),
    RuleSpec::token(
        "atlassian-api-token",
        Family::SourceHost,
        "Atlassian (Jira, Confluence, Bitbucket) API token",
        &["ATATT3"],
        r"\b(ATATT3[A-Za-z0-9_=-]{180,200})(?:[^A-Za-z0-9_=-]|$)",
    )
    .max_len(224),
    // ---- chat ---------------------------------------------------------------------------------
    RuleSpec::token(
        "slack-bot-token",
        Family::Chat,
        "Slack bot token",
        &["xoxb-"],
        r"\b(xoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24,34})\b",
    ),
    RuleSpec::token(
        "slack-user-token",
        Family::Chat,
        "Slack user token",
        &["xoxp-"],
        r"\b(xoxp-[0-9]{10,13}-[0-9]{10,13}-[0-9]{10,13}-[a-f0-9]{32})\b",
    ),
    RuleSpec::token(
        "slack-app-token",
        Family::Chat,
        "Slack app-level token",
        &["xapp-"],
        r"\b(xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,13}-[a-f0-9]{64})\b",
    ),
    RuleSpec::keyed(
        "slack-webhook-url",
        Family::Chat,
        "Slack incoming webhook or workflow trigger URL",
        &["hooks.slack.com/"],
        r"(?i:https://hooks\.slack\.com/)(?:services|workflows|triggers)/(T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24}|T[A-Z0-9]{8,12}/A[A-Z0-9]{8,12}/[0-9]{17,19}/[A-Za-z0-9]{32})\b",
    )
    .max_prefix(8)
    .max_len(160),
    RuleSpec::keyed(
        "discord-bot-token",
        Family::Chat,
        "Discord bot token next to a Discord name",
        &["discord"],
        concat!(
            r"(?i)discord[a-z0-9_.-]{0,24}",
            assign!(),
            r"(?-i:([MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}))(?:[^A-Za-z0-9_-]|$)"
        ),
    )
    .max_len(144)
    .entropy(3.5),
    RuleSpec::keyed(
        "discord-webhook-url",
        Family::Chat,
        "Discord webhook URL",
        &["discord.com/api/webhooks/", "discordapp.com/api/webhooks/"],
        r"(?i:https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/)([0-9]{17,20}/[A-Za-z0-9_-]{60,72})(?:[^A-Za-z0-9_-]|$)",
    )
    .max_prefix(16)
    .max_len(192),
    RuleSpec::token(
        "telegram-bot-token",
        Family::Chat,
        "Telegram bot token",
        &[":AA"],
        r"\b([0-9]{8,10}:AA[0-9A-Za-z_-]{33})(?:[^0-9A-Za-z_-]|$)",
    )
    .max_prefix(10)
    .max_len(56),
    RuleSpec::keyed(
        "msteams-webhook-url",
        Family::Chat,
        "Microsoft Teams incoming webhook URL",
        &[".webhook.office.com/webhookb2/"],
        r"(?i:https://[a-z0-9-]{1,40}\.webhook\.office\.com/webhookb2/)([0-9a-f-]{36}@[0-9a-f-]{36}/IncomingWebhook/[A-Za-z0-9]{32}/[0-9a-f-]{36}(?:/[A-Za-z0-9_-]{40,60})?)",
    )
    .max_prefix(48)
    .max_len(320),
    RuleSpec::token(
        "twilio-api-key",
        Family::Chat,
        "Twilio API key secret id",
        &["SK"],
        r"\b(SK[0-9a-f]{32})\b",
    )
    .max_len(40)
    .entropy(3.0),
    RuleSpec::keyed(
        "twilio-auth-token",
        Family::Chat,
        "Twilio auth token next to a Twilio name",
        &["twilio"],
        concat!(r"(?i)twilio[a-z0-9_.-]{0,32}", assign!(), r"([0-9a-f]{32})\b"),
    )
    .max_len(96)
    .entropy(3.0)
    .allow(AllowKinds::STANDARD.without(AllowKinds::HASHES)),
    // ---- mail ---------------------------------------------------------------------------------
    RuleSpec::token(
        "sendgrid-api-key",
        Family::Mail,
        "SendGrid API key",
        &["SG."],
        r"\b(SG\.[0-9A-Za-z_-]{22}\.[0-9A-Za-z_-]{43})(?:[^0-9A-Za-z_-]|$)",
    )
    .max_len(80),
    RuleSpec::token(
        "mailgun-api-key",
        Family::Mail,
        "Mailgun API key (key- form)",
        &["key-"],
        r"\b(key-[0-9a-f]{32})\b",
    )
    .max_len(40),
    RuleSpec::keyed(
        "mailgun-private-api-key",
        Family::Mail,
        "Mailgun private API key next to a Mailgun name",
        &["mailgun"],
        concat!(
            r"(?i)mailgun[a-z0-9_.-]{0,32}",
            assign!(),
            r"([0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8})\b"
        ),
    )
    .max_len(128),
    RuleSpec::token(
        "mailchimp-api-key",
        Family::Mail,
        "Mailchimp API key",
        &["-us"],
        r"\b([0-9a-f]{32}-us[0-9]{1,2})\b",
    )
    .max_prefix(32)
    .max_len(40),
    RuleSpec::token(
        "brevo-api-key",
        Family::Mail,
        "Brevo (Sendinblue) API key",
        &["xkeysib-"],
        r"\b(xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16})\b",
    ),
    // ---- payments -----------------------------------------------------------------------------
    RuleSpec::token(
        "stripe-secret-key",
        Family::Payments,
        "Stripe secret key",
        &["sk_live_", "sk_test_"],
        r"\b(sk_(?:live|test)_[0-9A-Za-z]{24,247})\b",
    )
    .max_len(256),
    RuleSpec::token(
        "stripe-restricted-key",
        Family::Payments,
        "Stripe restricted key",
        &["rk_live_", "rk_test_"],
        r"\b(rk_(?:live|test)_[0-9A-Za-z]{24,247})\b",
    )
    .max_len(256),
    RuleSpec::token(
        "stripe-webhook-secret",
        Family::Payments,
        "Stripe webhook signing secret",
        &["whsec_"],
        r"\b(whsec_[A-Za-z0-9+/]{32,88}={0,2})(?:[^A-Za-z0-9+/=]|$)",
    ),
    RuleSpec::token(
        "square-access-token",
        Family::Payments,
        "Square access token",
        &["EAAA", "sq0atp-"],
        r"\b(EAAA[0-9A-Za-z_-]{60}|sq0atp-[0-9A-Za-z_-]{22})(?:[^0-9A-Za-z_-]|$)",
    )
    .entropy(3.5),
    RuleSpec::token(
        "square-oauth-secret",
        Family::Payments,
        "Square OAuth application secret",
        &["sq0csp-"],
        r"\b(sq0csp-[0-9A-Za-z_-]{43})(?:[^0-9A-Za-z_-]|$)",
    ),
    RuleSpec::token(
        "braintree-access-token",
        Family::Payments,
        "Braintree (PayPal) access token",
        &["access_token$production$"],
        r"\b(access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32})\b",
    ),
    RuleSpec::token(
        "shopify-access-token",
        Family::Payments,
        "Shopify Admin API, custom app or private app access token",
        &["shpat_", "shpca_", "shppa_"],
        r"\b(shp(?:at|ca|pa)_[a-fA-F0-9]{32})\b",
    ),
    RuleSpec::token(
        "shopify-shared-secret",
        Family::Payments,
        "Shopify app shared secret",
        &["shpss_"],
        r"\b(shpss_[a-fA-F0-9]{32})\b",
    ),
    // ---- package registries -------------------------------------------------------------------
    RuleSpec::token(
        "npm-access-token",
        Family::PackageRegistry,
        "npm access token",
        &["npm_"],
        r"(npm_[A-Za-z0-9]{36})",
    )
    .validate(Validation::GithubChecksum),
    RuleSpec::keyed(
        "npmrc-auth",
        Family::PackageRegistry,
        "registry credential in an .npmrc (_authToken or _auth)",
        &["_auth"],
        // `_auth` or `_authToken` as an .npmrc key: at a line start or after `registry/:`.
        r"(?im)(?:^[ \t]{0,8}|:)_auth(?:Token)?[ \t]{0,4}=[ \t]{0,4}[\x22']?([A-Za-z0-9_.+/=-]{20,})(?:[^A-Za-z0-9_.+/=-]|$)",
    )
    .max_prefix(9)
    .max_len(2048)
    .generic()
    .allow(AllowKinds::STANDARD.without(AllowKinds::UUIDS)),
    RuleSpec::token(
        "pypi-upload-token",
        Family::PackageRegistry,
        "PyPI or TestPyPI API token",
        &["pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"],
        r"\b(pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[0-9A-Za-z_-]{50,})(?:[^0-9A-Za-z_-]|$)",
    )
    .max_len(512),
    RuleSpec::token(
        "rubygems-api-key",
        Family::PackageRegistry,
        "RubyGems API key",
        &["rubygems_"],
        r"\b(rubygems_[0-9a-f]{48})\b",
    ),
    RuleSpec::token(
        "crates-io-api-token",
        Family::PackageRegistry,
        "crates.io API token",
        &["cio"],
        r"\b(cio[A-Za-z0-9]{32})\b",
    )
    .max_len(40)
    .entropy(3.5),
    RuleSpec::token(
        "nuget-api-key",
        Family::PackageRegistry,
        "NuGet API key",
        &["oy2"],
        r"\b(oy2[a-z0-9]{43})\b",
    )
    .max_len(48)
    .entropy(3.5),
    RuleSpec::token(
        "dockerhub-token",
        Family::PackageRegistry,
        "Docker Hub personal or organisation access token",
        &["dckr_pat_", "dckr_oat_"],
        r"\b(dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,32})(?:[^A-Za-z0-9_-]|$)",
    ),
    RuleSpec::token(
        "artifactory-api-key",
        Family::PackageRegistry,
        "JFrog Artifactory API key",
        &["AKCp"],
        r"\b(AKCp[A-Za-z0-9]{69})\b",
    ),
    RuleSpec::token(
        "artifactory-reference-token",
        Family::PackageRegistry,
        "JFrog Artifactory reference token",
        &["cmVmdGtu"],
        r"\b(cmVmdGtu[A-Za-z0-9]{56})\b",
    ),
    // ---- AI APIs ------------------------------------------------------------------------------
    RuleSpec::token(
        "openai-api-key",
        Family::Ai,
        "OpenAI API key (user, project, service account or admin)",
        &["T3BlbkFJ"],
        r"\b(sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{20,200}T3BlbkFJ[A-Za-z0-9_-]{20,200})(?:[^A-Za-z0-9_-]|$)",
    )
    .max_prefix(224)
    .max_len(448),
    RuleSpec::token(
        "anthropic-api-key",
        Family::Ai,
        "Anthropic API key",
        &["sk-ant-api"],
        r"\b(sk-ant-api[0-9]{2}-[A-Za-z0-9_-]{93}AA)(?:[^A-Za-z0-9_-]|$)",
    ),
    RuleSpec::token(
        "anthropic-admin-key",
        Family::Ai,
        "Anthropic admin API key",
        &["sk-ant-admin"],
        r"\b(sk-ant-admin[0-9]{2}-[A-Za-z0-9_-]{93}AA)(?:[^A-Za-z0-9_-]|$)",
    ),
    RuleSpec::token(
        "huggingface-token",
        Family::Ai,
        "Hugging Face user access token",
        &["hf_"],
        r"\b(hf_[A-Za-z]{34})\b",
    )
    .entropy(3.5),
    RuleSpec::token(
        "huggingface-org-token",
        Family::Ai,
        "Hugging Face organisation API token",
        &["api_org_"],
        r"\b(api_org_[A-Za-z]{34})\b",
    )
    .entropy(3.5),
    RuleSpec::token(
        "groq-api-key",
        Family::Ai,
        "Groq API key",
        &["gsk_"],
        r"\b(gsk_[A-Za-z0-9]{52})\b",
    ),
    RuleSpec::token(
        "replicate-api-token",
        Family::Ai,
        "Replicate API token",
        &["r8_"],
        r"\b(r8_[A-Za-z0-9]{37})\b",
    ),
    // ---- infrastructure -----------------------------------------------------------------------
    RuleSpec::token(
        "vault-service-token",
        Family::Infrastructure,
        "HashiCorp Vault service token",
        &["hvs."],
        r"\b(hvs\.[A-Za-z0-9_-]{24,200})(?:[^A-Za-z0-9_-]|$)",
    )
    .max_len(224)
    .entropy(3.5),
    RuleSpec::token(
        "vault-batch-token",
        Family::Infrastructure,
        "HashiCorp Vault batch token",
        &["hvb."],
        r"\b(hvb\.[A-Za-z0-9_-]{24,400})(?:[^A-Za-z0-9_-]|$)",
    )
    .max_len(416)
    .entropy(3.5),
    RuleSpec::keyed(
        "vault-token-legacy",
        Family::Infrastructure,
        "HashiCorp Vault token in the pre-1.10 s. form next to a Vault name",
        &["vault"],
        concat!(
            r"(?i)vault[a-z0-9_.-]{0,24}",
            assign!(),
            r"(?-i:(s\.[A-Za-z0-9]{24}))\b"
        ),
    )
    .max_len(96)
    .entropy(3.5),
    RuleSpec::token(
        "databricks-token",
        Family::Infrastructure,
        "Databricks personal access token",
        &["dapi"],
        r"\b(dapi[0-9a-f]{32}(?:-[0-9])?)\b",
    )
    .max_len(48),
    RuleSpec::token(
        "terraform-cloud-token",
        Family::Infrastructure,
        "Terraform Cloud / HCP Terraform API token",
        &[".atlasv1."],
        r"\b([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_-]{60,70})(?:[^A-Za-z0-9_-]|$)",
    )
    .max_prefix(14),
    RuleSpec::token(
        "pulumi-access-token",
        Family::Infrastructure,
        "Pulumi access token",
        &["pul-"],
        r"\b(pul-[a-f0-9]{40})\b",
    ),
    RuleSpec::token(
        "doppler-token",
        Family::Infrastructure,
        "Doppler personal, service, CLI or service-account token",
        &["dp.pt.", "dp.st.", "dp.ct.", "dp.sa."],
        r"\b(dp\.(?:pt|st|ct|sa)\.[A-Za-z0-9]{40,44})\b",
    ),
    RuleSpec::token(
        "grafana-cloud-token",
        Family::Infrastructure,
        "Grafana Cloud access policy token",
        &["glc_"],
        r"\b(glc_[A-Za-z0-9+/]{32,400}={0,2})(?:[^A-Za-z0-9+/=]|$)",
    )
    .max_len(416),
    RuleSpec::token(
        "grafana-service-account-token",
        Family::Infrastructure,
        "Grafana service account token",
        &["glsa_"],
        r"\b(glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})\b",
    ),
    RuleSpec::token(
        "newrelic-user-api-key",
        Family::Infrastructure,
        "New Relic user API key",
        &["NRAK-"],
        r"\b(NRAK-[A-Z0-9]{27})\b",
    ),
    RuleSpec::token(
        "sentry-user-token",
        Family::Infrastructure,
        "Sentry user auth token",
        &["sntryu_"],
        r"\b(sntryu_[a-f0-9]{64})\b",
    ),
    // ---- private keys -------------------------------------------------------------------------
    RuleSpec::token(
        "private-key-rsa",
        Family::PrivateKey,
        "RSA private key (PKCS#1 PEM)",
        &["-----BEGIN RSA PRIVATE KEY-----"],
        pem!("RSA PRIVATE KEY"),
    )
    .max_len(PEM_MAX_LEN)
    .validate(Validation::Pem)
    .allow(AllowKinds::EXAMPLES),
    RuleSpec::token(
        "private-key-ec",
        Family::PrivateKey,
        "EC private key (SEC 1 PEM)",
        &["-----BEGIN EC PRIVATE KEY-----"],
        pem!("EC PRIVATE KEY"),
    )
    .max_len(PEM_MAX_LEN)
    .validate(Validation::Pem)
    .allow(AllowKinds::EXAMPLES),
    RuleSpec::token(
        "private-key-dsa",
        Family::PrivateKey,
        "DSA private key (PEM)",
        &["-----BEGIN DSA PRIVATE KEY-----"],
        pem!("DSA PRIVATE KEY"),
    )
    .max_len(PEM_MAX_LEN)
    .validate(Validation::Pem)
    .allow(AllowKinds::EXAMPLES),
    RuleSpec::token(
        "private-key-openssh",
        Family::PrivateKey,
        "OpenSSH private key",
        &["-----BEGIN OPENSSH PRIVATE KEY-----"],
        pem!("OPENSSH PRIVATE KEY"),
    )
    .max_len(PEM_MAX_LEN)
    .validate(Validation::Pem)
    .allow(AllowKinds::EXAMPLES),
    RuleSpec::token(
        "private-key-pkcs8",
        Family::PrivateKey,
        "PKCS#8 private key, plain or encrypted (PEM)",
        &["-----BEGIN PRIVATE KEY-----", "-----BEGIN ENCRYPTED PRIVATE KEY-----"],
        r"(-----BEGIN (?:ENCRYPTED )?PRIVATE KEY-----[A-Za-z0-9+/=\s:,.()\\-]*?-----END (?:ENCRYPTED )?PRIVATE KEY-----)",
    )
    .max_len(PEM_MAX_LEN)
    .validate(Validation::Pem)
    .allow(AllowKinds::EXAMPLES),
    RuleSpec::token(
        "private-key-pgp",
        Family::PrivateKey,
        "PGP private key block",
        &["-----BEGIN PGP PRIVATE KEY BLOCK-----"],
        pem!("PGP PRIVATE KEY BLOCK"),
    )
    .max_len(PGP_MAX_LEN)
    .validate(Validation::Pem)
    .allow(AllowKinds::EXAMPLES),
    RuleSpec::token(
        "putty-private-key",
        Family::PrivateKey,
        "PuTTY private key file (PPK)",
        &["PuTTY-User-Key-File-"],
        r"PuTTY-User-Key-File-[23]: [a-z0-9-]{3,40}\r?\nEncryption: [a-z0-9-]{3,40}\r?\nComment: [^\r\n]{0,256}\r?\nPublic-Lines: [0-9]{1,3}\r?\n(?:[A-Za-z0-9+/=]{1,64}\r?\n)+?(?:Key-Derivation: [^\r\n]{1,64}\r?\n(?:Argon2-[A-Za-z]{1,16}: [^\r\n]{1,128}\r?\n){0,4})?Private-Lines: [0-9]{1,3}\r?\n((?:[A-Za-z0-9+/=]{1,64}\r?\n)+?)Private-MAC: [0-9a-f]{40,64}",
    )
    .max_len(PEM_MAX_LEN)
    .allow(AllowKinds::EXAMPLES),
    RuleSpec::token(
        "age-secret-key",
        Family::PrivateKey,
        "age encryption secret key",
        &["AGE-SECRET-KEY-1"],
        r"\b(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})\b",
    ),
    // ---- JWT ----------------------------------------------------------------------------------
    RuleSpec::token(
        "jwt",
        Family::Jwt,
        "JSON Web Token",
        &["eyJ"],
        r"\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)(?:[^A-Za-z0-9_.-]|$)",
    )
    .max_len(JWT_MAX_LEN)
    .validate(Validation::Jwt),
    // ---- databases and brokers ----------------------------------------------------------------
    RuleSpec::keyed(
        "database-url-password",
        Family::Database,
        "database connection URL with a password",
        &[
            "postgres", "mysql", "mariadb", "mongodb", "mssql", "sqlserver", "oracle",
            "cockroachdb", "clickhouse", "couchdb", "neo4j", "redshift", "snowflake", "cassandra",
        ],
        r#"(?i)\b(?:postgres(?:ql)?|postgis|mysql[0-9]?|mariadb|mongodb(?:\+srv)?|mssql|sqlserver|oracle|cockroachdb|clickhouse|couchdbs?|neo4j(?:\+s)?|redshift|snowflake|cassandra)(?:\+[a-z0-9]{1,20})?://[^\s:@/'"`<>]{1,128}:([^\s@/'"`<>]{3,256})@[a-z0-9\[]"#,
    )
    .max_len(420)
    .allow(AllowKinds::GENERIC.without(AllowKinds::CODE_LIKE)),
    RuleSpec::keyed(
        "broker-url-password",
        Family::Database,
        "message broker or cache URL with a password",
        &["redis", "amqp", "mqtt", "nats://", "kafka://", "stomp", "memcached"],
        r#"(?i)\b(?:rediss?|amqps?|mqtts?|nats|kafka|stomp\+ssl|stomp|memcached)://[^\s:@/'"`<>]{0,128}:([^\s@/'"`<>]{3,256})@[a-z0-9\[]"#,
    )
    .max_len(420)
    .allow(AllowKinds::GENERIC.without(AllowKinds::CODE_LIKE)),
    RuleSpec::keyed(
        "jdbc-url-password",
        Family::Database,
        "JDBC URL with a password parameter",
        &["jdbc:"],
        r#"(?i)\bjdbc:[a-z0-9]{2,20}:[^\s"'<>]{0,240}?[?&;:]password=([^\s&;"'<>]{1,128})"#,
    )
    .max_len(420)
    .allow(AllowKinds::GENERIC.without(AllowKinds::CODE_LIKE)),
    RuleSpec::keyed(
        "connection-string-password",
        Family::Database,
        "ADO.NET or ODBC connection string with a password",
        &["password=", "pwd="],
        r#"(?i)\b(?:server|data source|host|address)=[^;"'\r\n]{1,128};[^"'\r\n]{0,256}?\b(?:password|pwd)=([^;"'\s]{1,128})"#,
    )
    .max_prefix(400)
    .max_len(560)
    .allow(AllowKinds::GENERIC.without(AllowKinds::CODE_LIKE)),
    // ---- HTTP credentials ---------------------------------------------------------------------
    RuleSpec::keyed(
        "url-basic-auth",
        Family::HttpCredentials,
        "user:password embedded in a URL",
        &["://"],
        // Anchored at `://`, not at the scheme: `://` is frequent in source, and an anchored
        // search gives up within a few bytes of a URL without credentials.
        r#"(?i)://[^\s:@/'"`<>]{1,128}:([^\s:@/'"`<>]{3,256})@[a-z0-9\[][a-z0-9.\]-]{0,252}"#,
    )
    .max_len(660)
    .generic()
    .allow(AllowKinds::GENERIC.without(AllowKinds::CODE_LIKE)),
    RuleSpec::keyed(
        "http-basic-auth-header",
        Family::HttpCredentials,
        "HTTP Basic credentials in an Authorization header",
        &["authorization"],
        r#"(?i)\bauthorization["']?\s{0,4}[:=,]\s{0,4}["']?basic\s{1,4}([A-Za-z0-9+/]{8,}={0,2})(?:[^A-Za-z0-9+/=]|$)"#,
    )
    .max_len(1024)
    .validate(Validation::BasicAuth),
    RuleSpec::keyed(
        "http-bearer-token",
        Family::HttpCredentials,
        "bearer token in an Authorization header",
        &["authorization"],
        r#"(?i)\bauthorization["']?\s{0,4}[:=,]\s{0,4}["']?bearer\s{1,4}([A-Za-z0-9._~+/-]{20,}={0,2})(?:[^A-Za-z0-9._~+/=-]|$)"#,
    )
    .max_len(JWT_MAX_LEN)
    .generic()
    .entropy(3.5)
    .allow(AllowKinds::STANDARD),
    // ---- generic assignments ------------------------------------------------------------------
    // The generic rules start their match at the suggestive word, so their window search is
    // anchored: "token" is among the most frequent words in source code, and an anchored search
    // gives up a few bytes after a word that is not followed by an assignment.
    RuleSpec::keyed(
        "generic-secret-quoted",
        Family::Generic,
        "quoted value assigned to a secret-looking name (code, JSON, YAML, TOML, .env)",
        GENERIC_KEYWORDS,
        concat!(
            "(?i)",
            secret_word!(),
            r#"["']?\s{0,4}(?:=|:|=>|:=|\?\?=|\|\|=)\s{0,4}[`"']([^"'`\s\\]{8,200})[`"']"#
        ),
    )
    .max_len(280)
    .entropy(3.0)
    .generic(),
    RuleSpec::keyed(
        "generic-secret-unquoted",
        Family::Generic,
        "bare value assigned to a secret-looking name on its own line (.env, YAML, properties)",
        GENERIC_KEYWORDS,
        concat!(
            "(?im)",
            secret_word!(),
            r#"[ \t]{0,4}[:=][ \t]{0,4}([^\s"'`#;,(){}\[\]<>$\\]{8,200})[ \t]*(?:[ \t]#[^\r\n]*)?\r?$"#
        ),
    )
    .max_len(280)
    .entropy(3.0)
    .validate(Validation::KeyAtLineStart)
    .generic(),
    RuleSpec::keyed(
        "generic-secret-xml",
        Family::Generic,
        "secret-looking XML element (Maven settings, .NET config)",
        &["password>", "passwd>", "secret>", "token>", "apikey>", "api_key>", "passphrase>"],
        r"(?i)<([a-z0-9_.:-]{0,40}(?:password|passwd|passphrase|secret|token|apikey|api_key))>([^<\s]{8,200})</",
    )
    .max_prefix(48)
    .max_len(320)
    .entropy(3.0)
    .group(2)
    .generic(),
];
