//! Fake credentials in each rule's real format, inside realistic snippets.
//!
//! Every value comes from a seeded generator: random bodies in the vendor's alphabet and
//! length, with valid checksums where the format has one. None of them was ever issued by a
//! vendor. Shared by the tests, the corpus generator and the benchmark.

#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// A small deterministic generator (SplitMix64): the same seed gives the same corpus.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + self.below(hi_inclusive - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn string(&mut self, alphabet: &str, len: usize) -> String {
        let a = alphabet.as_bytes();
        (0..len).map(|_| a[self.below(a.len())] as char).collect()
    }

    pub fn string_between(&mut self, alphabet: &str, lo: usize, hi: usize) -> String {
        let len = self.range(lo, hi);
        self.string(alphabet, len)
    }

    pub fn bytes_between(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let len = self.range(lo, hi);
        self.bytes(len)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

pub const DIGITS: &str = "0123456789";
pub const HEX: &str = "0123456789abcdef";
pub const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const ALNUM: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const LOWER_ALNUM: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
pub const UPPER_ALNUM: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const B64URL: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
pub const B64: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/";
pub const BASE32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub const BECH32_UPPER: &str = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The base62 CRC32 checksum of a GitHub-style token body, computed independently of the
/// engine (bitwise CRC32, IEEE polynomial).
pub fn github_checksum(body: &str) -> String {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in body.as_bytes() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut value = !crc;
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// A GitHub-style token (`ghp_`, `npm_`, ...) with a valid checksum.
pub fn github_style(prefix: &str, rng: &mut Rng) -> String {
    let body = rng.string(ALNUM, 30);
    format!("{prefix}{body}{}", github_checksum(&body))
}

pub fn uuid(rng: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        rng.string(HEX, 8),
        rng.string(HEX, 4),
        rng.string(HEX, 4),
        rng.string(HEX, 4),
        rng.string(HEX, 12)
    )
}

/// A password: mixed case, digits and a little punctuation, safe inside URLs and quotes.
pub fn password(rng: &mut Rng) -> String {
    let len = rng.range(12, 24);
    let mut p = rng.string(ALNUM, len);
    // Keep at least one digit and both cases so the value never reads as an identifier.
    p.push_str(&rng.string(DIGITS, 2));
    p.push(*rng.pick(&['_', '-', '!', '~']));
    p.push_str(&rng.string(UPPER, 1));
    p.push_str(&rng.string("abcdefghijklmnopqrstuvwxyz", 1));
    p
}

fn pem_lines(der: &[u8], width: usize) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::new();
    for chunk in b64.as_bytes().chunks(width) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out
}

/// A DER-shaped body: SEQUENCE with a two-byte length, then random bytes.
fn fake_der(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut der = vec![0x30, 0x82, (len >> 8) as u8, len as u8, 0x02, 0x01, 0x00];
    der.extend(rng.bytes(len));
    der
}

/// A PEM private key block of `label` with a random body of the right outer shape.
pub fn pem_block(label: &str, rng: &mut Rng) -> String {
    let body = match label {
        "OPENSSH PRIVATE KEY" => {
            let mut b = b"openssh-key-v1\0".to_vec();
            b.extend(rng.bytes_between(380, 400));
            pem_lines(&b, 70)
        }
        "PGP PRIVATE KEY BLOCK" => {
            let mut b = vec![0x95, 0x03, 0xc6];
            b.extend(rng.bytes_between(900, 1400));
            format!("\n{}={}\n", pem_lines(&b, 64), rng.string(B64, 4))
        }
        "RSA PRIVATE KEY" => pem_lines(
            &{
                let n = rng.range(1180, 1220);
                fake_der(rng, n)
            },
            64,
        ),
        "EC PRIVATE KEY" => pem_lines(&fake_der(rng, 114), 64),
        "DSA PRIVATE KEY" => pem_lines(&fake_der(rng, 440), 64),
        _ => pem_lines(
            &{
                let n = rng.range(1200, 1230);
                fake_der(rng, n)
            },
            64,
        ),
    };
    format!("-----BEGIN {label}-----\n{body}-----END {label}-----")
}

pub fn jwt(rng: &mut Rng) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"{}","typ":"JWT"}}"#,
        rng.pick(&["HS256", "RS256", "ES256"])
    ));
    let payload = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"sub":"{}","iss":"https://auth.acme.internal","iat":{},"exp":{}}}"#,
        rng.string(LOWER_ALNUM, 12),
        1_700_000_000 + rng.below(10_000_000),
        1_800_000_000 + rng.below(10_000_000)
    ));
    let sig = rng.string(B64URL, 43);
    format!("{header}.{payload}.{sig}")
}

fn putty_key(rng: &mut Rng) -> (String, String) {
    let public = pem_lines(&rng.bytes(279), 64);
    let private = pem_lines(&rng.bytes(660), 64);
    let public_lines = public.lines().count();
    let private_lines = private.lines().count();
    let text = format!(
        "PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\nComment: deploy@build-07\n\
         Public-Lines: {public_lines}\n{public}Private-Lines: {private_lines}\n{private}\
         Private-MAC: {}\n",
        rng.string(HEX, 64)
    );
    (text, private)
}

/// A fake secret value in rule `id`'s format and a variable name it would be stored under.
/// `None` for rules whose secret only exists inside a larger structure.
pub fn token(id: &str, rng: &mut Rng) -> Option<(String, &'static str)> {
    let v = match id {
        "aws-access-key-id" => (
            format!("{}{}", rng.pick(&["AKIA", "ASIA"]), rng.string(BASE32, 16)),
            "AWS_ACCESS_KEY_ID",
        ),
        "aws-session-token" => (
            format!("IQoJb3JpZ2luX2VjE{}", rng.string_between(B64, 280, 360)),
            "AWS_SESSION_TOKEN",
        ),
        "gcp-api-key" => (format!("AIza{}", rng.string(B64URL, 35)), "GOOGLE_API_KEY"),
        "gcp-oauth-client-secret" => (
            format!("GOCSPX-{}", rng.string(B64URL, 28)),
            "GOOGLE_CLIENT_SECRET",
        ),
        "azure-ad-client-secret" => (
            format!(
                "{}{}Q~{}",
                rng.string(ALNUM, 3),
                rng.string(DIGITS, 1),
                rng.string(
                    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_~.",
                    34
                )
            ),
            "AZURE_CLIENT_SECRET",
        ),
        "alibaba-access-key-id" => (
            format!("LTAI{}", rng.string(ALNUM, 20)),
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
        ),
        "digitalocean-pat" => (
            format!("dop_v1_{}", rng.string(HEX, 64)),
            "DIGITALOCEAN_TOKEN",
        ),
        "digitalocean-oauth-token" => (format!("doo_v1_{}", rng.string(HEX, 64)), "DO_OAUTH_TOKEN"),
        "digitalocean-refresh-token" => (
            format!("dor_v1_{}", rng.string(HEX, 64)),
            "DO_REFRESH_TOKEN",
        ),
        "heroku-api-key-v2" => (
            format!("HRKU-AA{}", rng.string(B64URL, 58)),
            "HEROKU_API_KEY",
        ),
        "github-pat-classic" => (github_style("ghp_", rng), "GITHUB_TOKEN"),
        "github-oauth-token" => (github_style("gho_", rng), "GH_OAUTH_TOKEN"),
        "github-user-to-server-token" => (github_style("ghu_", rng), "GH_USER_TOKEN"),
        "github-server-to-server-token" => (github_style("ghs_", rng), "GH_INSTALLATION_TOKEN"),
        "github-refresh-token" => (github_style("ghr_", rng), "GH_REFRESH_TOKEN"),
        "github-pat-fine-grained" => (
            format!(
                "github_pat_11{}_{}",
                rng.string(ALNUM, 20),
                rng.string(ALNUM, 59)
            ),
            "GITHUB_PAT",
        ),
        "gitlab-pat" => (format!("glpat-{}", rng.string(ALNUM, 20)), "GITLAB_TOKEN"),
        "gitlab-pipeline-trigger-token" => (
            format!("glptt-{}", rng.string(HEX, 40)),
            "GITLAB_TRIGGER_TOKEN",
        ),
        "gitlab-runner-token" => (format!("glrt-{}", rng.string(B64URL, 20)), "RUNNER_TOKEN"),
        "gitlab-deploy-token" => (format!("gldt-{}", rng.string(ALNUM, 20)), "DEPLOY_TOKEN"),
        "gitlab-oauth-app-secret" => (
            format!("gloas-{}", rng.string(HEX, 64)),
            "GITLAB_APP_SECRET",
        ),
        "gitlab-agent-token" => (format!("glagent-{}", rng.string(ALNUM, 50)), "AGENT_TOKEN"),
        "atlassian-api-token" => (
            format!(
                "ATATT3xFfGF0{}={}",
                rng.string(B64URL, 170),
                rng.string(HEX, 8).to_uppercase()
            ),
            "JIRA_API_TOKEN",
        ),
        "slack-bot-token" => (
            format!(
                "xoxb-{}-{}-{}",
                rng.string(DIGITS, 12),
                rng.string(DIGITS, 13),
                rng.string(ALNUM, 24)
            ),
            "SLACK_BOT_TOKEN",
        ),
        "slack-user-token" => (
            format!(
                "xoxp-{}-{}-{}-{}",
                rng.string(DIGITS, 12),
                rng.string(DIGITS, 12),
                rng.string(DIGITS, 13),
                rng.string(HEX, 32)
            ),
            "SLACK_USER_TOKEN",
        ),
        "slack-app-token" => (
            format!(
                "xapp-1-A{}-{}-{}",
                rng.string(UPPER_ALNUM, 10),
                rng.string(DIGITS, 13),
                rng.string(HEX, 64)
            ),
            "SLACK_APP_TOKEN",
        ),
        "telegram-bot-token" => (
            format!(
                "{}{}:AA{}",
                rng.range(1, 7),
                rng.string(DIGITS, 9),
                rng.string(B64URL, 33)
            ),
            "TELEGRAM_BOT_TOKEN",
        ),
        "twilio-api-key" => (format!("SK{}", rng.string(HEX, 32)), "TWILIO_API_KEY"),
        "sendgrid-api-key" => (
            format!("SG.{}.{}", rng.string(B64URL, 22), rng.string(B64URL, 43)),
            "SENDGRID_API_KEY",
        ),
        "mailgun-api-key" => (format!("key-{}", rng.string(HEX, 32)), "MAILGUN_KEY"),
        "mailchimp-api-key" => (
            format!("{}-us{}", rng.string(HEX, 32), rng.range(1, 21)),
            "MAILCHIMP_API_KEY",
        ),
        "brevo-api-key" => (
            format!("xkeysib-{}-{}", rng.string(HEX, 64), rng.string(ALNUM, 16)),
            "BREVO_API_KEY",
        ),
        "stripe-secret-key" => (
            format!("sk_{}_{}", rng.pick(&["live", "test"]), {
                let n = *rng.pick(&[24, 99]);
                rng.string(ALNUM, n)
            }),
            "STRIPE_SECRET_KEY",
        ),
        "stripe-restricted-key" => (
            format!("rk_live_{}", {
                let n = *rng.pick(&[24, 99]);
                rng.string(ALNUM, n)
            }),
            "STRIPE_RESTRICTED_KEY",
        ),
        "stripe-webhook-secret" => (
            format!("whsec_{}", rng.string(ALNUM, 32)),
            "STRIPE_WEBHOOK_SECRET",
        ),
        "square-access-token" => {
            if rng.below(2) == 0 {
                (
                    format!("EAAA{}", rng.string(B64URL, 60)),
                    "SQUARE_ACCESS_TOKEN",
                )
            } else {
                (
                    format!("sq0atp-{}", rng.string(B64URL, 22)),
                    "SQUARE_ACCESS_TOKEN",
                )
            }
        }
        "square-oauth-secret" => (
            format!("sq0csp-{}", rng.string(B64URL, 43)),
            "SQUARE_APP_SECRET",
        ),
        "braintree-access-token" => (
            format!(
                "access_token$production${}${}",
                rng.string(LOWER_ALNUM, 16),
                rng.string(HEX, 32)
            ),
            "BRAINTREE_ACCESS_TOKEN",
        ),
        "shopify-access-token" => (
            format!(
                "{}{}",
                rng.pick(&["shpat_", "shpca_", "shppa_"]),
                rng.string(HEX, 32)
            ),
            "SHOPIFY_ACCESS_TOKEN",
        ),
        "shopify-shared-secret" => (
            format!("shpss_{}", rng.string(HEX, 32)),
            "SHOPIFY_SHARED_SECRET",
        ),
        "npm-access-token" => (github_style("npm_", rng), "NPM_TOKEN"),
        "pypi-upload-token" => (
            format!(
                "pypi-AgEIcHlwaS5vcmc{}",
                rng.string_between(B64URL, 60, 160)
            ),
            "PYPI_TOKEN",
        ),
        "rubygems-api-key" => (
            format!("rubygems_{}", rng.string(HEX, 48)),
            "GEM_HOST_API_KEY",
        ),
        "crates-io-api-token" => (
            format!("cio{}", rng.string(ALNUM, 32)),
            "CARGO_REGISTRY_TOKEN",
        ),
        "nuget-api-key" => (
            format!("oy2{}", rng.string(LOWER_ALNUM, 43)),
            "NUGET_API_KEY",
        ),
        "dockerhub-token" => (
            format!("dckr_pat_{}", rng.string(B64URL, 27)),
            "DOCKERHUB_TOKEN",
        ),
        "artifactory-api-key" => (
            format!("AKCp{}", rng.string(ALNUM, 69)),
            "ARTIFACTORY_API_KEY",
        ),
        "artifactory-reference-token" => (
            format!("cmVmdGtuOjAxOj{}", rng.string(ALNUM, 50)),
            "ARTIFACTORY_ACCESS_TOKEN",
        ),
        "openai-api-key" => {
            if rng.below(2) == 0 {
                (
                    format!(
                        "sk-proj-{}T3BlbkFJ{}",
                        rng.string(B64URL, 74),
                        rng.string(B64URL, 74)
                    ),
                    "OPENAI_API_KEY",
                )
            } else {
                (
                    format!(
                        "sk-{}T3BlbkFJ{}",
                        rng.string(ALNUM, 20),
                        rng.string(ALNUM, 20)
                    ),
                    "OPENAI_API_KEY",
                )
            }
        }
        "anthropic-api-key" => (
            format!("sk-ant-api03-{}AA", rng.string(B64URL, 93)),
            "ANTHROPIC_API_KEY",
        ),
        "anthropic-admin-key" => (
            format!("sk-ant-admin01-{}AA", rng.string(B64URL, 93)),
            "ANTHROPIC_ADMIN_KEY",
        ),
        "huggingface-token" => (format!("hf_{}", rng.string(LETTERS, 34)), "HF_TOKEN"),
        "huggingface-org-token" => (
            format!("api_org_{}", rng.string(LETTERS, 34)),
            "HF_ORG_TOKEN",
        ),
        "groq-api-key" => (format!("gsk_{}", rng.string(ALNUM, 52)), "GROQ_API_KEY"),
        "replicate-api-token" => (
            format!("r8_{}", rng.string(ALNUM, 37)),
            "REPLICATE_API_TOKEN",
        ),
        "vault-service-token" => (
            format!("hvs.CAESI{}", rng.string(B64URL, 86)),
            "VAULT_TOKEN",
        ),
        "vault-batch-token" => (
            format!("hvb.AAAAAQ{}", rng.string(B64URL, 130)),
            "VAULT_TOKEN",
        ),
        "databricks-token" => (format!("dapi{}", rng.string(HEX, 32)), "DATABRICKS_TOKEN"),
        "terraform-cloud-token" => (
            format!(
                "{}.atlasv1.{}",
                rng.string(ALNUM, 14),
                rng.string(B64URL, 67)
            ),
            "TFE_TOKEN",
        ),
        "pulumi-access-token" => (
            format!("pul-{}", rng.string(HEX, 40)),
            "PULUMI_ACCESS_TOKEN",
        ),
        "doppler-token" => (
            format!("dp.{}.{}", rng.pick(&["pt", "st"]), rng.string(ALNUM, 43)),
            "DOPPLER_TOKEN",
        ),
        "grafana-cloud-token" => (
            format!("glc_eyJvIjoi{}=", rng.string_between(B64, 90, 140)),
            "GRAFANA_CLOUD_TOKEN",
        ),
        "grafana-service-account-token" => (
            format!("glsa_{}_{}", rng.string(ALNUM, 32), rng.string(HEX, 8)),
            "GRAFANA_SA_TOKEN",
        ),
        "newrelic-user-api-key" => (
            format!("NRAK-{}", rng.string(UPPER_ALNUM, 27)),
            "NEW_RELIC_API_KEY",
        ),
        "sentry-user-token" => (
            format!("sntryu_{}", rng.string(HEX, 64)),
            "SENTRY_AUTH_TOKEN",
        ),
        "age-secret-key" => (
            format!("AGE-SECRET-KEY-1{}", rng.string(BECH32_UPPER, 58)),
            "AGE_SECRET_KEY",
        ),
        "jwt" => (jwt(rng), "SESSION_JWT"),
        _ => return None,
    };
    Some(v)
}

/// A snippet with one fake secret, the secret's text, and the rule ids the engine must report.
#[derive(Clone, Debug)]
pub struct Sample {
    pub text: String,
    pub secret: String,
    pub expect: Vec<&'static str>,
}

impl Sample {
    fn one(text: String, secret: String, id: &'static str) -> Sample {
        Sample {
            text,
            secret,
            expect: vec![id],
        }
    }
}

/// Puts `value` under `name` in one of the file kinds secrets are committed in.
pub fn embed(name: &str, value: &str, rng: &mut Rng) -> String {
    let lower = name.to_ascii_lowercase();
    let camel: String = lower
        .split('_')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        })
        .collect();
    match rng.below(9) {
        0 => format!("# local settings\n{name}={value}\nLOG_LEVEL=debug\n"),
        1 => format!("export {name}=\"{value}\"\n"),
        2 => format!("services:\n  api:\n    environment:\n      {name}: \"{value}\"\n"),
        3 => format!("{{\n  \"{camel}\": \"{value}\",\n  \"region\": \"eu-west-1\"\n}}\n"),
        4 => format!("import os\n\n{name} = \"{value}\"\nclient = Client({lower}={name})\n"),
        5 => format!("const {camel} = '{value}';\nmodule.exports = {{ {camel} }};\n"),
        6 => format!(
            "fn client() -> Client {{\n    let {lower} = \"{value}\";\n    Client::new({lower})\n}}\n"
        ),
        7 => format!("[default]\n{lower} = {value}\n"),
        _ => format!("func main() {{\n\t{camel} := \"{value}\"\n\trun({camel})\n}}\n"),
    }
}

/// A realistic snippet for rule `id`.
pub fn sample(id: &'static str, rng: &mut Rng) -> Sample {
    if let Some((value, name)) = token(id, rng) {
        let text = embed(name, &value, rng);
        return Sample::one(text, value, id);
    }
    match id {
        "aws-secret-access-key" => {
            let key_id = format!("AKIA{}", rng.string(BASE32, 16));
            let secret = rng.string(B64, 40);
            let text = match rng.below(3) {
                0 => format!(
                    "[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
                ),
                1 => format!(
                    "{{\n  \"AccessKey\": {{\n    \"AccessKeyId\": \"{key_id}\",\n    \"SecretAccessKey\": \"{secret}\"\n  }}\n}}\n"
                ),
                _ => format!(
                    "env:\n  AWS_ACCESS_KEY_ID: {key_id}\n  AWS_SECRET_ACCESS_KEY: {secret}\n"
                ),
            };
            Sample {
                text,
                secret,
                expect: vec!["aws-access-key-id", "aws-secret-access-key"],
            }
        }
        "gcp-service-account" => {
            let key_id = rng.string(HEX, 40);
            let pem = pem_block("PRIVATE KEY", rng).replace('\n', "\\n");
            let project = format!("acme-{}", rng.string(LOWER_ALNUM, 6));
            let text = format!(
                "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"{project}\",\n  \"private_key_id\": \"{key_id}\",\n  \"private_key\": \"{pem}\\n\",\n  \"client_email\": \"ci@{project}.iam.gserviceaccount.com\",\n  \"client_id\": \"{}\"\n}}\n",
                rng.string(DIGITS, 21)
            );
            Sample {
                text,
                secret: key_id,
                expect: vec!["gcp-service-account", "private-key-pkcs8"],
            }
        }
        "azure-storage-account-key" => {
            let key = format!("{}==", rng.string(B64, 86));
            let text = format!(
                "\"ConnectionStrings\": {{\n  \"Storage\": \"DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey={key};EndpointSuffix=core.windows.net\"\n}}\n"
            );
            Sample::one(text, key, id)
        }
        "azure-sas-token" => {
            let raw = STANDARD.encode(rng.bytes(32));
            let sig = raw
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D");
            let text = format!(
                "BLOB_URL=https://acmeprod.blob.core.windows.net/backups/db.tar.gz?sv=2022-11-02&ss=b&srt=o&sp=rl&se=2031-01-01T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sig={sig}\n"
            );
            Sample::one(text, sig, id)
        }
        "heroku-api-key" => {
            let key = uuid(rng);
            let text = format!("deploy:\n  heroku_api_key: \"{key}\"\n  app: acme-web\n");
            let text = if rng.below(2) == 0 {
                text
            } else {
                format!("HEROKU_API_KEY={key}\n")
            };
            Sample::one(text, key, id)
        }
        "slack-webhook-url" => {
            let path = format!(
                "T{}/B{}/{}",
                rng.string(UPPER_ALNUM, 10),
                rng.string(UPPER_ALNUM, 10),
                rng.string(ALNUM, 24)
            );
            let text = format!(
                "notify:\n  slack_webhook: https://hooks.slack.com/services/{path}\n  channel: \"#deploys\"\n"
            );
            Sample::one(text, path, id)
        }
        "discord-bot-token" => {
            let token = format!(
                "{}{}.{}.{}",
                rng.pick(&["M", "N", "O"]),
                rng.string(B64URL, 25),
                rng.string(B64URL, 6),
                rng.string(B64URL, 38)
            );
            let text = if rng.below(2) == 0 {
                format!("DISCORD_BOT_TOKEN={token}\n")
            } else {
                format!("config = {{\n    \"discord_token\": \"{token}\",\n}}\n")
            };
            Sample::one(text, token, id)
        }
        "discord-webhook-url" => {
            let path = format!("{}/{}", rng.string(DIGITS, 18), rng.string(B64URL, 68));
            let text = format!(
                "requests.post(\"https://discord.com/api/webhooks/{path}\", json={{\"content\": msg}})\n"
            );
            Sample::one(text, path, id)
        }
        "msteams-webhook-url" => {
            let path = format!(
                "{}@{}/IncomingWebhook/{}/{}",
                uuid(rng),
                uuid(rng),
                rng.string(ALNUM, 32),
                uuid(rng)
            );
            let text =
                format!("teams_webhook_url: https://acme.webhook.office.com/webhookb2/{path}\n");
            Sample::one(text, path, id)
        }
        "twilio-auth-token" => {
            let token = rng.string(HEX, 32);
            let sid = format!("AC{}", rng.string(HEX, 32));
            let text = format!("TWILIO_ACCOUNT_SID={sid}\nTWILIO_AUTH_TOKEN={token}\n");
            Sample::one(text, token, id)
        }
        "mailgun-private-api-key" => {
            let key = format!(
                "{}-{}-{}",
                rng.string(HEX, 32),
                rng.string(HEX, 8),
                rng.string(HEX, 8)
            );
            let text = format!("mailgun:\n  domain: mg.acme.io\n  mailgun_api_key: \"{key}\"\n");
            Sample::one(text, key, id)
        }
        "npmrc-auth" => {
            let value = uuid(rng);
            let text = format!(
                "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={value}\nalways-auth=true\n"
            );
            Sample::one(text, value, id)
        }
        "vault-token-legacy" => {
            let token = format!("s.{}", rng.string(ALNUM, 24));
            let text = format!(
                "vault:\n  addr: https://vault.acme.internal:8200\n  vault_token: {token}\n"
            );
            Sample::one(text, token, id)
        }
        "private-key-rsa"
        | "private-key-ec"
        | "private-key-dsa"
        | "private-key-openssh"
        | "private-key-pgp"
        | "private-key-pkcs8" => {
            let label = match id {
                "private-key-rsa" => "RSA PRIVATE KEY",
                "private-key-ec" => "EC PRIVATE KEY",
                "private-key-dsa" => "DSA PRIVATE KEY",
                "private-key-openssh" => "OPENSSH PRIVATE KEY",
                "private-key-pgp" => "PGP PRIVATE KEY BLOCK",
                _ => *rng.pick(&["PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]),
            };
            let block = pem_block(label, rng);
            let text = match rng.below(3) {
                0 => format!("{block}\n"),
                1 => format!("tls:\n  key: |\n{}\n", indent(&block, "    ")),
                _ => format!("const KEY = `{block}`;\n"),
            };
            let secret = if text.starts_with("tls:") {
                indent(&block, "    ").trim_start().to_owned()
            } else {
                block
            };
            Sample::one(text, secret, id)
        }
        "putty-private-key" => {
            let (text, private) = putty_key(rng);
            Sample::one(text, private, id)
        }
        "database-url-password" => {
            let pw = password(rng);
            let (scheme, user, host) = *rng.pick(&[
                ("postgres", "app", "db.acme.internal:5432/app"),
                (
                    "postgresql+psycopg2",
                    "reporting",
                    "pg-replica:5432/reports",
                ),
                ("mysql", "root", "mysql.acme.internal:3306/shop"),
                (
                    "mongodb+srv",
                    "svc-orders",
                    "cluster0.ab1cd.mongodb.net/orders",
                ),
            ]);
            let url = format!("{scheme}://{user}:{pw}@{host}");
            let text = if rng.below(2) == 0 {
                format!("DATABASE_URL={url}\n")
            } else {
                format!("spring:\n  datasource:\n    url: \"{url}\"\n")
            };
            Sample::one(text, pw, id)
        }
        "broker-url-password" => {
            let pw = password(rng);
            let url = match rng.below(3) {
                0 => format!("redis://:{pw}@cache.acme.internal:6379/0"),
                1 => format!("amqp://orders:{pw}@rabbitmq:5672/prod"),
                _ => format!("rediss://default:{pw}@redis-12345.c1.eu-west-1.ec2.cloud:12345"),
            };
            let text = format!("CELERY_BROKER_URL = \"{url}\"\n");
            Sample::one(text, pw, id)
        }
        "jdbc-url-password" => {
            let pw = password(rng);
            let text = format!(
                "datasource.url=jdbc:mysql://db.acme.internal:3306/shop?user=shop&password={pw}&useSSL=true\n"
            );
            Sample::one(text, pw, id)
        }
        "connection-string-password" => {
            let pw = password(rng);
            let text = format!(
                "<add name=\"Default\" connectionString=\"Server=tcp:acme.database.windows.net,1433;Database=app;User ID=app;Password={pw};Encrypt=True;\" />\n"
            );
            Sample::one(text, pw, id)
        }
        "url-basic-auth" => {
            let pw = password(rng);
            let text = format!(
                "git remote add mirror https://deploy-bot:{pw}@git.acme.internal/platform/api.git\n"
            );
            Sample::one(text, pw, id)
        }
        "http-basic-auth-header" => {
            let cred = STANDARD.encode(format!(
                "ci-{}:{}",
                rng.string(LOWER_ALNUM, 5),
                password(rng)
            ));
            let text = format!(
                "curl -H \"Authorization: Basic {cred}\" https://nexus.acme.internal/service/rest/v1/status\n"
            );
            Sample::one(text, cred, id)
        }
        "http-bearer-token" => {
            let token = rng.string(B64URL, 48);
            let text = format!(
                "headers = {{\n    \"Authorization\": \"Bearer {token}\",\n    \"Accept\": \"application/json\",\n}}\n"
            );
            Sample::one(text, token, id)
        }
        "generic-secret-quoted" => {
            let pw = password(rng);
            let text = match rng.below(5) {
                0 => format!("DB_PASSWORD = \"{pw}\"\n"),
                1 => format!("{{\"client_secret\": \"{pw}\", \"client_id\": \"web\"}}\n"),
                2 => format!("const apiKey = '{pw}';\n"),
                3 => format!("smtp:\n  password: \"{pw}\"\n"),
                _ => format!("let signing_secret = \"{pw}\";\n"),
            };
            Sample::one(text, pw, id)
        }
        "generic-secret-unquoted" => {
            let pw = password(rng);
            let text = match rng.below(4) {
                0 => format!("DB_PASSWORD={pw}\n"),
                1 => format!("smtp:\n  host: mail.acme.io\n  password: {pw}\n"),
                2 => format!("spring.datasource.password={pw}\n"),
                _ => format!("export SESSION_SECRET={pw}\n"),
            };
            Sample::one(text, pw, id)
        }
        "generic-secret-xml" => {
            let pw = password(rng);
            let text = format!(
                "<server>\n  <id>releases</id>\n  <username>deployer</username>\n  <password>{pw}</password>\n</server>\n"
            );
            Sample::one(text, pw, id)
        }
        other => panic!("no sample for rule {other}"),
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Text that looks like rule `id`'s secret but is not one (a short body, a broken checksum, a
/// missing context, a placeholder), in a neutral line. The rule must not fire on it.
pub fn near_miss(id: &str, rng: &mut Rng) -> String {
    let neutral = |v: &str| format!("seen in the changelog: {v} (rotated)\n");
    match id {
        "github-pat-classic"
        | "github-oauth-token"
        | "github-user-to-server-token"
        | "github-server-to-server-token"
        | "github-refresh-token"
        | "npm-access-token" => {
            let (mut v, _) = token(id, rng).unwrap();
            // Break the checksum but keep the shape.
            let last = v.pop().unwrap();
            v.push(if last == 'A' { 'B' } else { 'A' });
            neutral(&v)
        }
        "jwt" => {
            let body = URL_SAFE_NO_PAD.encode(b"{\"sub\":\"x\"}");
            // The header decodes to JSON without "alg".
            let header = URL_SAFE_NO_PAD.encode(b"{\"typ\":\"JWT\",\"cty\":\"x\"}");
            neutral(&format!("{header}.{body}.{}", rng.string(B64URL, 43)))
        }
        "private-key-rsa"
        | "private-key-ec"
        | "private-key-dsa"
        | "private-key-openssh"
        | "private-key-pgp"
        | "private-key-pkcs8" => {
            let label = match id {
                "private-key-rsa" => "RSA PRIVATE KEY",
                "private-key-ec" => "EC PRIVATE KEY",
                "private-key-dsa" => "DSA PRIVATE KEY",
                "private-key-openssh" => "OPENSSH PRIVATE KEY",
                "private-key-pgp" => "PGP PRIVATE KEY BLOCK",
                _ => "PRIVATE KEY",
            };
            let block = pem_block(label, rng);
            // A block that never ends is not reported.
            let cut = block.find("-----END").unwrap();
            format!("{}\n", &block[..cut])
        }
        "putty-private-key" => "PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\n".to_owned(),
        // A SHA-1 digest where the key should be: too little entropy for the rule.
        "aws-secret-access-key" => format!("aws_secret_access_key = {}\n", rng.string(HEX, 40)),
        "gcp-service-account" => {
            "{\"type\": \"service_account\", \"project_id\": \"acme\"}\n".to_owned()
        }
        "azure-storage-account-key" => {
            format!("AccountName=acme;AccountKey={}==\n", rng.string(B64, 40))
        }
        "azure-sas-token" => {
            "https://acme.blob.core.windows.net/c/f?sv=2022-11-02&sig=\n".to_owned()
        }
        "heroku-api-key" => format!("build_id: {}\n", uuid(rng)),
        "slack-webhook-url" => "https://hooks.slack.com/services/T00000000/B00000000/\n".to_owned(),
        "discord-bot-token" => neutral(&format!(
            "M{}.{}.{}",
            rng.string(B64URL, 25),
            rng.string(B64URL, 6),
            rng.string(B64URL, 38)
        )),
        "discord-webhook-url" => "https://discord.com/api/webhooks/\n".to_owned(),
        "msteams-webhook-url" => "https://acme.webhook.office.com/webhookb2/\n".to_owned(),
        "twilio-auth-token" => format!("build_hash: {}\n", rng.string(HEX, 32)),
        "mailgun-private-api-key" => format!(
            "trace: {}-{}-{}\n",
            rng.string(HEX, 32),
            rng.string(HEX, 8),
            rng.string(HEX, 8)
        ),
        "npmrc-auth" => "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n".to_owned(),
        "vault-token-legacy" => format!("session: s.{}\n", rng.string(ALNUM, 24)),
        "telegram-bot-token" => neutral(&format!(
            "{}:AA{}",
            rng.string(DIGITS, 9),
            rng.string(B64URL, 20)
        )),
        "mailchimp-api-key" => neutral(&format!("{}-us5", rng.string(HEX, 20))),
        "database-url-password" => {
            "DATABASE_URL=postgres://app@db.acme.internal:5432/app\n".to_owned()
        }
        "broker-url-password" => "REDIS_URL=redis://cache.acme.internal:6379/0\n".to_owned(),
        "jdbc-url-password" => "url=jdbc:mysql://db:3306/shop?user=shop&useSSL=true\n".to_owned(),
        "connection-string-password" => {
            "Server=tcp:acme.database.windows.net;Database=app;Integrated Security=true;\n"
                .to_owned()
        }
        "url-basic-auth" => {
            "git clone https://deploy-bot@git.acme.internal/platform/api.git\n".to_owned()
        }
        "http-basic-auth-header" => {
            format!("Authorization: Basic {}\n", STANDARD.encode("just-a-user"))
        }
        "http-bearer-token" => "Authorization: Bearer ${ACCESS_TOKEN}\n".to_owned(),
        "generic-secret-quoted" => "DB_PASSWORD = \"${DB_PASSWORD}\"\n".to_owned(),
        "generic-secret-unquoted" => "password: changeme\n".to_owned(),
        "generic-secret-xml" => "<password>${env.DEPLOY_PASSWORD}</password>\n".to_owned(),
        _ => {
            let (v, _) = token(id, rng).unwrap_or_else(|| panic!("no near miss for {id}"));
            // Same prefix, body far too short for the format.
            let prefix = v
                .find(['_', '-', '.', ':'])
                .filter(|&i| i < 16)
                .map_or(4, |i| i + 1);
            let short = &v[..(prefix + 6).min(v.len())];
            neutral(short)
        }
    }
}
