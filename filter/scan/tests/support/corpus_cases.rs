//! The labelled corpus: generated fake credentials in realistic snippets, and hard negatives.
//!
//! `cargo run -p gitgate-scan --example corpus-gen` writes these cases to `tests/corpus/`; the
//! corpus test checks the files still match this generator, then scores the engine on them.
//! Labels come from how each case is built, never from what the engine reports.

#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::fakes::{self, ALNUM, B64, DIGITS, HEX, LOWER_ALNUM, Rng};

/// One labelled case.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// What the case is, for people reading the corpus.
    pub name: String,
    pub text: String,
    /// Rule ids the engine must report on `text`; empty for negatives.
    pub expect: Vec<String>,
}

/// The seed of the whole corpus.
pub const SEED: u64 = 0x6167_6174_6567;

/// Samples of each rule in the positive corpus.
pub const SAMPLES_PER_RULE: usize = 4;

/// Positive cases: every built-in rule several times, then documents mixing several kinds.
pub fn positives(rule_ids: &[&'static str]) -> Vec<Case> {
    let mut rng = Rng::new(SEED);
    let mut cases = Vec::new();
    for &id in rule_ids {
        for n in 0..SAMPLES_PER_RULE {
            let s = fakes::sample(id, &mut rng);
            cases.push(Case {
                name: format!("{id} #{n}"),
                text: s.text,
                expect: s.expect.iter().map(|e| e.to_string()).collect(),
            });
        }
    }
    for n in 0..20 {
        let mut text = String::from("# settings gathered for the migration\n");
        let mut expect: Vec<String> = Vec::new();
        for _ in 0..3 {
            let id = *rng.pick(rule_ids);
            let s = fakes::sample(id, &mut rng);
            text.push_str(&s.text);
            text.push_str("\nfn unrelated(total: u64) -> u64 { total.saturating_mul(3) }\n");
            expect.extend(s.expect.iter().map(|e| e.to_string()));
        }
        expect.sort();
        expect.dedup();
        cases.push(Case {
            name: format!("mixed document #{n}"),
            text,
            expect,
        });
    }
    cases
}

fn negative(name: &str, text: String) -> Case {
    Case {
        name: name.to_owned(),
        text,
        expect: Vec::new(),
    }
}

/// Hard negatives: text that looks like it holds secrets and does not.
pub fn negatives(rule_ids: &[&'static str]) -> Vec<Case> {
    let mut rng = Rng::new(SEED ^ 0xffff);
    let mut cases = Vec::new();

    // Near misses of every rule, in neutral lines.
    for &id in rule_ids {
        for n in 0..2 {
            cases.push(negative(
                &format!("near miss of {id} #{n}"),
                fakes::near_miss(id, &mut rng),
            ));
        }
    }

    // Vendor documentation examples.
    for (name, text) in [
        (
            "aws documented example keys",
            "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        ),
        (
            "aws second documented example",
            "AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE\nAWS_SECRET_ACCESS_KEY=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY\n",
        ),
        (
            "jwt.io debugger token",
            "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c' https://api.acme.io\n",
        ),
        (
            "stripe api reference key",
            "import stripe\nstripe.api_key = \"sk_test_4eC39HqLyjWDarjtT1zdp7dc\"\n",
        ),
        (
            "github docs sample token",
            "Use a token such as ghp_16C7e42F292c6912E7710c838347Ae178B4a in the header.\n",
        ),
        (
            "slack docs sample token",
            "SLACK_BOT_TOKEN=xoxb-not-a-real-token-this-will-not-work\n",
        ),
        (
            "twilio docs placeholder",
            "TWILIO_API_KEY=SKXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\nTWILIO_AUTH_TOKEN=your_auth_token\n",
        ),
        (
            "google docs placeholder",
            "<script src=\"https://maps.googleapis.com/maps/api/js?key=YOUR_API_KEY&callback=initMap\"></script>\n",
        ),
        (
            "openai docs placeholder",
            "export OPENAI_API_KEY=\"sk-...\"\n",
        ),
        (
            "anthropic docs placeholder",
            "ANTHROPIC_API_KEY=sk-ant-api03-...\n",
        ),
    ] {
        cases.push(negative(name, text.to_owned()));
    }

    // Placeholders and templates.
    for (name, text) in [
        (
            "placeholder token",
            "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
        ),
        (
            "changeme password",
            "db:\n  user: app\n  password: changeme\n",
        ),
        (
            "angle bracket placeholder",
            "API_KEY=<your-api-key>\nAPI_SECRET=<your-api-secret>\n",
        ),
        (
            "masked value",
            "{\"token\": \"****************\", \"user\": \"alice\"}\n",
        ),
        ("dummy password", "TEST_DB_PASSWORD=dummy-password-123\n"),
        ("your key here", "SECRET_KEY = \"your-secret-key-here\"\n"),
        ("test password", "password = \"test1234\"\n"),
        ("empty values", "password: \"\"\napi_key: null\ntoken: ~\n"),
        (
            "env interpolation",
            "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n",
        ),
        (
            "github actions secret",
            "env:\n  GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}\n  NPM_TOKEN: ${{ secrets.NPM_TOKEN }}\n",
        ),
        (
            "helm template",
            "data:\n  password: \"{{ .Values.db.password | b64enc }}\"\n",
        ),
        (
            "python format",
            "conn = psycopg2.connect(password=\"%(password)s\" % cfg)\nDB_PASSWORD = os.environ[\"DB_PASSWORD\"]\n",
        ),
        (
            "node env",
            "const apiKey = process.env.STRIPE_SECRET_KEY;\nconst token = process.env.GITHUB_TOKEN || '';\n",
        ),
        (
            "java getenv",
            "String secret = System.getenv(\"CLIENT_SECRET\");\nString password = props.getProperty(\"db.password\");\n",
        ),
        (
            "shell variable",
            "export API_TOKEN=$CI_JOB_TOKEN\ncurl -H \"Authorization: Bearer $API_TOKEN\" https://api.acme.io\n",
        ),
        (
            "templated url",
            "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app\nREDIS_URL=redis://:${REDIS_PASSWORD}@cache:6379\n",
        ),
        (
            "local default credentials",
            "DATABASE_URL=postgres://postgres:postgres@localhost:5432/app_test\nAMQP_URL=amqp://guest:guest@localhost:5672/\n",
        ),
        (
            "url with placeholder password",
            "git clone https://username:password@git.acme.internal/repo.git\n",
        ),
        (
            "terraform sensitive variable",
            "variable \"db_password\" {\n  type      = string\n  sensitive = true\n}\n",
        ),
        (
            "kubernetes secret ref",
            "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: db\n        key: password\n",
        ),
    ] {
        cases.push(negative(name, text.to_owned()));
    }

    // Code that handles secrets without holding one.
    for (name, text) in [
        (
            "rust env lookup",
            "let token = std::env::var(\"GITHUB_TOKEN\")?;\nlet client = Client::new(&token);\n",
        ),
        (
            "rust struct fields",
            "pub struct Credentials {\n    pub username: String,\n    pub password: SecretString,\n    pub token: Option<Token>,\n}\n",
        ),
        (
            "python getpass",
            "password = getpass.getpass(\"Password: \")\napi_key = os.getenv(\"API_KEY\", \"\")\n",
        ),
        (
            "member access",
            "self.secret_key = settings.SECRET_KEY\nauth_token = self._auth_token\n",
        ),
        (
            "storage key constant",
            "const TOKEN_STORAGE_KEY = \"auth_token_storage\";\nconst PASSWORD_FIELD = \"password_confirmation\";\n",
        ),
        (
            "oauth endpoints",
            "token_url = \"https://oauth2.googleapis.com/token\"\nauthorize_url = \"https://accounts.google.com/o/oauth2/auth\"\n",
        ),
        (
            "html form",
            "<label for=\"password\">Password</label>\n<input type=\"password\" name=\"password\" placeholder=\"Password\" autocomplete=\"current-password\">\n",
        ),
        (
            "i18n strings",
            "{\n  \"password\": \"Mot de passe\",\n  \"token_expired\": \"Your session has expired, sign in again\",\n  \"secret_question\": \"What was your first pet?\"\n}\n",
        ),
        (
            "sql create user",
            "CREATE USER app WITH PASSWORD 'changeme';\n",
        ),
        (
            "docs sentence",
            "Set STRIPE_SECRET_KEY to your key; live keys start with sk_live_ and test keys with sk_test_.\n",
        ),
        (
            "lexer code",
            "match token {\n    Token::Ident(name) => parse_ident(name),\n    Token::Secret => return Err(Error::Unexpected(token)),\n}\n",
        ),
        (
            "git ssh remotes",
            "git@github.com:acme/platform.git\nssh://git@git.acme.internal:2222/acme/api.git\nalice@acme.io\n",
        ),
        (
            "aws arn",
            "role_arn = \"arn:aws:iam::123456789012:role/deploy\"\n",
        ),
    ] {
        cases.push(negative(name, text.to_owned()));
    }

    // Minified JavaScript that names tokens and passwords everywhere.
    cases.push(negative(
        "minified auth bundle",
        "!function(e,t){\"object\"==typeof exports?module.exports=t():e.auth=t()}(this,function(){\"use strict\";\
var e={token:null,password:\"\",secret:void 0,apiKey:null};function t(t){return e.token=t.token||null,\
e.password=t.password||\"\",e.apiKey=t.apiKey||localStorage.getItem(\"api_key\"),e}var n=\"Bearer \",\
r=/^[A-Za-z0-9-_]+\\.[A-Za-z0-9-_]+\\.[A-Za-z0-9-_]*$/;return{set:t,header:function(){return e.token?\
{Authorization:n+e.token}:{}},isJwt:function(t){return r.test(t)},clear:function(){e.token=e.password=null}}});\n"
            .to_owned(),
    ));
    cases.push(negative(
        "minified config reader",
        "var a=require(\"fs\"),b=function(c){var d=JSON.parse(a.readFileSync(c,\"utf8\"));return{token:d.token||process.env.TOKEN,\
password:d.password,secretName:\"app/\"+d.env+\"/secret\"}};module.exports={load:b,TOKEN_HEADER:\"x-auth-token\"};\n"
            .to_owned(),
    ));

    // Hashes, ids and digests in lock files and logs.
    for n in 0..3 {
        let sha512 = STANDARD.encode(rng.bytes(64));
        cases.push(negative(
            &format!("package-lock entry #{n}"),
            format!(
                "\"node_modules/left-pad-{n}\": {{\n  \"version\": \"1.3.{n}\",\n  \"resolved\": \"https://registry.npmjs.org/left-pad/-/left-pad-1.3.{n}.tgz\",\n  \"integrity\": \"sha512-{sha512}\"\n}}\n"
            ),
        ));
        cases.push(negative(
            &format!("yarn.lock entry #{n}"),
            format!(
                "left-pad@^1.3.0:\n  version \"1.3.{n}\"\n  resolved \"https://registry.yarnpkg.com/left-pad/-/left-pad-1.3.{n}.tgz#{}\"\n  integrity sha512-{}\n",
                rng.string(HEX, 40),
                STANDARD.encode(rng.bytes(64))
            ),
        ));
        cases.push(negative(
            &format!("Cargo.lock entry #{n}"),
            format!(
                "[[package]]\nname = \"token-parser\"\nversion = \"0.{n}.2\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
                rng.string(HEX, 64)
            ),
        ));
        cases.push(negative(
            &format!("poetry.lock hashes #{n}"),
            format!(
                "files = [\n    {{file = \"secretstorage-3.3.{n}-py3-none-any.whl\", hash = \"sha256:{}\"}},\n]\n",
                rng.string(HEX, 64)
            ),
        ));
        cases.push(negative(
            &format!("go.sum lines #{n}"),
            format!(
                "golang.org/x/oauth2 v0.{n}.0 h1:{}=\ngolang.org/x/oauth2 v0.{n}.0/go.mod h1:{}=\n",
                STANDARD.encode(rng.bytes(32)).trim_end_matches('='),
                STANDARD.encode(rng.bytes(32)).trim_end_matches('=')
            ),
        ));
        cases.push(negative(
            &format!("git log #{n}"),
            format!(
                "commit {}\nMerge: {} {}\nAuthor: Alice <alice@acme.io>\n\n    Rotate the deploy token (token id {})\n",
                rng.string(HEX, 40),
                rng.string(HEX, 7),
                rng.string(HEX, 7),
                fakes::uuid(&mut rng)
            ),
        ));
        cases.push(negative(
            &format!("hash-valued token fields #{n}"),
            format!(
                "commit_token = \"{}\"\nsecret_md5 = \"{}\"\nrequest_token: {}\nimage: nginx@sha256:{}\n",
                rng.string(HEX, 40),
                rng.string(HEX, 32),
                fakes::uuid(&mut rng),
                rng.string(HEX, 64)
            ),
        ));
        cases.push(negative(
            &format!("github api json #{n}"),
            format!(
                "{{\"sha\": \"{}\", \"node_id\": \"C_kwDO{}\", \"tree\": {{\"sha\": \"{}\"}}}}\n",
                rng.string(HEX, 40),
                rng.string(ALNUM, 20),
                rng.string(HEX, 40)
            ),
        ));
    }

    // Binary-ish content: images, public keys, certificates.
    for n in 0..3 {
        let png = {
            let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
            b.extend(rng.bytes(1500 + 300 * n));
            STANDARD.encode(b)
        };
        cases.push(negative(
            &format!("data uri image #{n}"),
            format!(".logo {{ background: url(data:image/png;base64,{png}); }}\n"),
        ));
        cases.push(negative(
            &format!("ssh public key #{n}"),
            format!(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} deploy@build-{n}\n",
                rng.string(B64, 43)
            ),
        ));
        let public = fakes::pem_block("PRIVATE KEY", &mut rng).replace("PRIVATE KEY", "PUBLIC KEY");
        cases.push(negative(
            &format!("pem public key #{n}"),
            format!("{public}\n"),
        ));
        let cert = fakes::pem_block("PRIVATE KEY", &mut rng).replace("PRIVATE KEY", "CERTIFICATE");
        cases.push(negative(
            &format!("pem certificate #{n}"),
            format!("{cert}\n"),
        ));
    }

    // Identifiers that share a vendor prefix.
    cases.push(negative(
        "prefix-looking identifiers",
        format!(
            "fn hf_hub_download() {{}}\nlet sk_live_mode = true;\nlet key_id = \"key-rotation-policy\";\n\
             let order = \"SKU-{}\";\nlet glpat_enabled = cfg.glpat;\nlet region = \"en-us1\";\n",
            rng.string(DIGITS, 8)
        ),
    ));
    cases.push(negative(
        "random identifiers in tests",
        format!(
            "#[test]\nfn parses_ids() {{\n    assert_eq!(parse(\"{}\"), Ok(Id({})));\n    let nonce = \"{}\";\n}}\n",
            rng.string(LOWER_ALNUM, 24),
            rng.range(1, 1_000_000),
            rng.string(HEX, 24)
        ),
    ));
    cases
}

/// Escapes `s` as a JSON string.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// One JSON object per line: `{"name": ..., "text": ..., "expect": [...]}`.
pub fn to_jsonl(cases: &[Case]) -> String {
    let mut out = String::new();
    for c in cases {
        let expect: Vec<String> = c.expect.iter().map(|e| json_string(e)).collect();
        out.push_str(&format!(
            "{{\"name\": {}, \"text\": {}, \"expect\": [{}]}}\n",
            json_string(&c.name),
            json_string(&c.text),
            expect.join(", ")
        ));
    }
    out
}

/// Parses what [`to_jsonl`] writes.
pub fn from_jsonl(text: &str) -> Vec<Case> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("corpus line is JSON");
            Case {
                name: v["name"].as_str().expect("name").to_owned(),
                text: v["text"].as_str().expect("text").to_owned(),
                expect: v["expect"]
                    .as_array()
                    .expect("expect")
                    .iter()
                    .map(|e| e.as_str().expect("rule id").to_owned())
                    .collect(),
            }
        })
        .collect()
}

/// The corpus files and the cases each holds.
pub fn files(rule_ids: &[&'static str]) -> Vec<(&'static str, Vec<Case>)> {
    vec![
        ("positives.jsonl", positives(rule_ids)),
        ("hard-negatives.jsonl", negatives(rule_ids)),
    ]
}
